"""The manifest reference page (docs/manifest.md), written from the JSON Schema, so the page
says what the models say: each section and each model's fields with type, default and meaning.
"""

from __future__ import annotations

import json
from typing import Any

from dsdb_plan.schema import manifest_schema

# The models in the order a reader meets them in a manifest.
_ORDER = (
    "Settings",
    "Variable",
    "Connection",
    "Backup",
    "Migration",
    "MigrationTable",
    "Operators",
    "Incremental",
    "Restore",
    "Teardown",
    "Moved",
)
_NULL = {"type": "null"}


def manifest_reference(schema: dict[str, Any] | None = None) -> str:
    """The reference page as Markdown."""
    schema = manifest_schema() if schema is None else schema
    definitions: dict[str, Any] = schema.get("$defs", {})
    names = [name for name in _ORDER if name in definitions]
    names += sorted(set(definitions) - set(names))
    parts = [
        "# Manifest reference",
        "",
        "Generated from the manifest's JSON Schema (`schemas/manifest.schema.json`) by "
        "`dsdb schema --format markdown > docs/manifest.md`; edit the field descriptions in "
        "`dsdb_plan/models.py` and `dsdb_plan/connection.py`, not this page.",
        "",
        "Any string may use `${env:NAME}`, `${env:NAME:-default}` and `${var:NAME}`; a "
        "string that is exactly one `${var:NAME}` takes the variable's type.",
        "",
        *_section("The manifest", schema),
    ]
    for name in names:
        parts += _section(name, definitions[name])
    return "\n".join(parts).rstrip("\n") + "\n"


def _anchor(name: str) -> str:
    return name.lower().replace(" ", "-")


def _section(name: str, model: dict[str, Any]) -> list[str]:
    lines = [f"## {name}", "", _cell(model.get("description", "")), ""]
    required = set(model.get("required", ()))
    lines += ["| field | type | default | meaning |", "| --- | --- | --- | --- |"]
    for field, spec in model.get("properties", {}).items():
        default = "required" if field in required else _default(spec)
        lines.append(
            f"| `{field}` | {_type(spec)} | {default} | {_cell(spec.get('description', ''))} |"
        )
    return [*lines, ""]


def _default(spec: dict[str, Any]) -> str:
    if "default" not in spec or spec["default"] is None:
        return ""
    return f"`{json.dumps(spec['default'])}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _type(spec: dict[str, Any]) -> str:
    """A schema's type in words: `integer (>= 1)`, `list of string`, [Backup](#backup)."""
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{_anchor(name)})"
    if "const" in spec:
        return f"`{json.dumps(spec['const'])}`"
    if "enum" in spec:
        return " or ".join(f"`{json.dumps(value)}`" for value in spec["enum"])
    options = spec.get("anyOf") or spec.get("oneOf")
    if options:
        shown = [_type(option) for option in options if option != _NULL]
        return " or ".join(dict.fromkeys(shown))
    kind = spec.get("type")
    if kind == "array":
        return f"list of {_type(spec.get('items', {}))}"
    if kind == "object":
        values = spec.get("additionalProperties")
        patterns = spec.get("patternProperties")
        if patterns:
            values = next(iter(patterns.values()))
        if isinstance(values, dict):
            return f"map of name to {_type(values)}"
        return "mapping"
    if kind is None:
        return "any"
    bounds = [
        f"{sign} {spec[key]}"
        for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="))
        if key in spec
    ]
    return str(kind) + (f" ({', '.join(bounds)})" if bounds else "")
