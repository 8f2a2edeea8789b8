"""Rendered plans compared with expected text (tests/golden/). Regenerate a golden file by
deleting it and running the tests once: the test writes it and fails, for review."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsdb_plan.errors import DsdbError
from dsdb_plan.payloads import CopyTables, TableCopy
from dsdb_plan.plan import Action, ActionType, Plan
from dsdb_plan.render import render

GOLDEN = Path(__file__).parent / "golden"


def representative_plan() -> Plan:
    return Plan(
        manifest_path="dsdb.yaml",
        manifest_digest="4e6d31fd42c4e586c6ce15239fc9e3d27e4e402672337d03c2ede2b8cbc46078",
        state_lineage="0b7a9d62-4c1e-4b9e-9a57-1f2d3c4b5a69",
        state_serial=7,
        actions=(
            Action(
                "backup.nightly",
                "backup.nightly",
                "backup",
                ActionType.RESYNC,
                ("table flights changed: 336,776 → 337,001 rows",),
            ),
            Action(
                "backup.nightly#prune",
                "backup.nightly",
                "backup",
                ActionType.DESTROY,
                ("prune 1 old backup (keep: 7): 20261101T000000Z-aaaaaa",),
                destructive=True,
                depends_on=("backup.nightly",),
            ),
            Action(
                "restore.scratch",
                "restore.scratch",
                "restore",
                ActionType.CREATE,
                ("restore the backup that backup.nightly takes in this apply into scratch",),
                depends_on=("backup.nightly",),
            ),
            Action(
                "backup.weekly",
                "backup.weekly",
                "backup",
                ActionType.NOOP,
                ("latest backup 20261120T000000Z-bbbbbb reflects the current data",),
            ),
            Action(
                "teardown.old",
                "teardown.old",
                "teardown",
                ActionType.DESTROY,
                (
                    "drop 1 table in scratch: tmp_import (120 rows)",
                    "a final backup is taken first, into backups/_teardown-old",
                ),
                destructive=True,
                depends_on=("restore.scratch",),
            ),
        ),
        warnings=("restore.scratch depends on backup.nightly, which is not selected",),
        checks=("prod (PostgreSQL): every row's version (xmin) of each table read",),
    )


def no_change_plan() -> Plan:
    return Plan(
        "dsdb.yaml",
        "ab" * 32,
        "lineage",
        3,
        (Action("backup.nightly", "backup.nightly", "backup", ActionType.NOOP, ("same",)),),
    )


def estimated_rows_plan() -> Plan:
    """A destructive migration whose large filtered tables the database estimated."""
    return Plan(
        "dsdb.yaml",
        "cd" * 32,
        "lineage",
        4,
        (
            Action(
                "migration.to-prod",
                "migration.to-prod",
                "migration",
                ActionType.UPDATE,
                (
                    "tables.flights.where.month: [1] → [1, 2]",
                    "flights → prod.flights: ~1,200,000 rows, estimated (replace)",
                    "legs → prod.legs: ~3,400,000 rows, estimated (replace; child of flights)",
                    "airlines → prod.airlines: 12 rows (replace)",
                ),
                destructive=True,
                payload=CopyTables(
                    {},
                    source="local",
                    target="prod",
                    tables=(
                        TableCopy("airlines", "airlines", "replace", 12),
                        TableCopy("flights", "flights", "replace", 1_200_000, estimated=True),
                        TableCopy("legs", "legs", "replace", 3_400_000, estimated=True),
                    ),
                ),
            ),
        ),
    )


@pytest.mark.parametrize(
    ("name", "plan", "fmt"),
    [
        ("plan.txt", representative_plan(), "text"),
        ("plan.md", representative_plan(), "markdown"),
        ("no-changes.txt", no_change_plan(), "text"),
        ("no-changes.md", no_change_plan(), "markdown"),
        ("estimated-rows.txt", estimated_rows_plan(), "text"),
        ("estimated-rows.md", estimated_rows_plan(), "markdown"),
    ],
)
def test_rendered_plan_matches_golden_file(name: str, plan: Plan, fmt: str) -> None:
    rendered = render(plan, fmt)
    golden = GOLDEN / name
    if not golden.exists():
        golden.write_text(rendered)
        pytest.fail(f"wrote {golden}; review it and run again")
    assert rendered == golden.read_text()


def test_text_colour_only_when_asked() -> None:
    assert "\x1b[" not in render(representative_plan(), "text")
    assert "\x1b[" in render(representative_plan(), "text", color=True)


def test_destructive_actions_come_first_in_markdown() -> None:
    markdown = render(representative_plan(), "markdown")
    assert markdown.index("Destructive actions") < markdown.index("| action | count |")
    assert markdown.index("teardown.old") < markdown.index("restore.scratch")


def test_json_round_trips_with_format_version() -> None:
    plan = representative_plan()
    data = json.loads(render(plan, "json"))
    assert data["format_version"] == 2
    assert data["summary"] == {"create": 1, "destroy": 2, "no-op": 1, "resync": 1}
    assert Plan.from_dict(data) == plan
    estimated = estimated_rows_plan()
    assert Plan.from_dict(json.loads(render(estimated, "json"))) == estimated


def test_a_plan_file_of_another_format_is_refused_by_name() -> None:
    data = json.loads(render(representative_plan(), "json"))
    data["format_version"] = 1
    with pytest.raises(DsdbError, match="format 1, this dsdb reads format 2"):
        Plan.from_dict(data)
