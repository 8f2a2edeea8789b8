"""docs/manifest.md is the reference written from the JSON Schema, and kept up to date."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsdb_plan.schema import manifest_schema
from dsdb_plan.schema_docs import manifest_reference
from tests.helpers import run_cli

REFERENCE = Path(__file__).parent.parent / "docs" / "manifest.md"


def test_checked_in_reference_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    printed = run_cli(capsys, "schema", "--format", "markdown")
    assert printed.code == 0
    assert printed.out == manifest_reference()
    assert REFERENCE.read_text() == printed.out, (
        "docs/manifest.md is stale: dsdb schema --format markdown > docs/manifest.md"
    )


def test_every_field_of_every_model_is_in_the_reference() -> None:
    schema = manifest_schema()
    reference = manifest_reference(schema)
    for name, model in [("The manifest", schema), *schema["$defs"].items()]:
        section = reference.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        for field in model["properties"]:
            assert f"| `{field}` |" in section, (name, field)
    restore = reference.split("\n## Restore\n", 1)[1].split("\n## ", 1)[0]
    assert "| `replace_existing` | boolean | `false` | Allow replacing target tables" in restore


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"type": "integer", "minimum": 1}, "integer (>= 1)"),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "string"),
        ({"type": "array", "items": {"$ref": "#/$defs/Moved"}}, "list of [Moved](#moved)"),
        ({"enum": ["append", "upsert"]}, '`"append"` or `"upsert"`'),
        (
            {"type": "object", "patternProperties": {"^x$": {"$ref": "#/$defs/Backup"}}},
            "map of name to [Backup](#backup)",
        ),
    ],
)
def test_types_in_words(spec: dict[str, object], words: str) -> None:
    schema = {"properties": {"f": spec}, "required": ["f"], "description": "d"}
    assert f"| `f` | {words} | required |  |" in manifest_reference(schema)
