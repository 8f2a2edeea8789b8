"""Every example manifest validates, and names the JSON Schema so editors check it too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from dsdb_plan.manifest import load_manifest

REPO = Path(__file__).resolve().parent.parent
SCHEMA_FILE = REPO / "schemas" / "manifest.schema.json"
EXAMPLES = sorted((REPO / "examples").glob("**/*.yaml"))
MODELINE = "# yaml-language-server: $schema="


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return schema


def test_there_are_examples() -> None:
    assert EXAMPLES


def test_schema_is_a_valid_json_schema() -> None:
    schema = _schema()

    jsonschema.validators.validator_for(schema).check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_example_starts_with_a_schema_modeline(path: Path) -> None:
    first = path.read_text().splitlines()[0]

    assert first.startswith(MODELINE)
    target = first.removeprefix(MODELINE).strip()
    assert not Path(target).is_absolute()
    assert (path.parent / target).resolve() == SCHEMA_FILE


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_example_validates(path: Path) -> None:
    loaded = load_manifest(path)

    assert loaded.manifest.connections


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_example_validates_against_the_json_schema(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), _schema())


def test_the_json_schema_refuses_what_the_loader_refuses() -> None:
    # The schema is what editors and CI use: an unknown field must fail there as well.
    with pytest.raises(jsonschema.ValidationError, match="hots"):
        jsonschema.validate(
            {"version": 1, "connections": {"a": {"driver": "sqlite", "hots": "x"}}}, _schema()
        )
