"""The manifest's JSON Schema, generated from the pydantic models."""

from __future__ import annotations

import json
from typing import Any

from dsdb_plan.models import Manifest

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema that editors and CI use to check manifests."""
    schema = Manifest.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": SCHEMA_DIALECT, **schema}


def manifest_schema_text() -> str:
    """The schema as checked into `schemas/manifest.schema.json`."""
    return json.dumps(manifest_schema(), indent=2, ensure_ascii=False) + "\n"
