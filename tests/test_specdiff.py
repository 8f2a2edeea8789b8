"""Spec changes read as the user wrote the manifest, never as a dump of the model."""

from __future__ import annotations

from typing import Any

from dsdb_plan.models import Migration
from dsdb_plan.specdiff import spec_changes


def _recorded(fields: dict[str, Any]) -> dict[str, Any]:
    """The spec as state records it: every model field, unset ones as null."""
    return Migration.model_validate({"from": "local", "to": "prod", **fields}).model_dump(
        mode="json", by_alias=True, exclude={"description"}
    )


def test_a_filter_change_shows_both_values_as_written() -> None:
    old = _recorded({"tables": {"users": {"where": {"country": "FR"}}}})
    new = _recorded({"tables": {"users": {"where": {"country": {"in": ["FR", "GB"]}}}}})
    assert spec_changes(old, new) == ["tables.users.where.country: FR → {in: [FR, GB]}"]


def test_added_removed_and_changed_fields_each_get_a_line() -> None:
    old = _recorded({"mode": "upsert", "tables": {"a": {}, "b": {"columns": ["x"]}}})
    new = _recorded({"mode": "mirror", "tables": {"a": {"rename_to": "a2"}, "c": {}}})
    assert spec_changes(old, new) == [
        "mode: upsert → mirror",
        "tables.a.rename_to: set to a2",
        "tables.b: removed (was {columns: [x]})",
        "tables.c: set to {}",
    ]


def test_strings_that_would_read_as_other_values_keep_their_quotes() -> None:
    assert spec_changes({"x": "a: b", "keep": 2}, {"x": "yes", "keep": 4}) == [
        "keep: 2 → 4",
        "x: 'a: b' → 'yes'",
    ]
    assert spec_changes({"a": 1}, {"a": 1}) == []
