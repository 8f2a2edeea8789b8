"""teardown: the decision from what the connection holds, and apply dropping exactly what
the plan showed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dsdb_plan.errors import PlanError
from dsdb_plan.kinds.teardown import TeardownObservation, decide, moved_since
from dsdb_plan.models import Teardown
from dsdb_plan.payloads import DropTables, Unchanged
from dsdb_plan.plan import ActionType
from tests.helpers import run_cli, sqlite_url, table_names

SPEC = Teardown(connection="scratch")


def _decide(seen: TeardownObservation, spec: Teardown = SPEC, protected: bool = False):  # type: ignore[no-untyped-def]
    return decide(
        "teardown.wipe",
        spec,
        {"connection": "scratch"},
        seen,
        protected=protected,
        final_backup="backups/_teardown-wipe",
    )


def test_a_teardown_lists_each_table_with_its_rows_and_drops_exactly_those() -> None:
    action = _decide(TeardownObservation(gone=False, rows={"a": 1, "b": 0}))
    assert action.type is ActionType.DESTROY and action.destructive
    assert action.reasons[0] == "drop 2 tables in scratch: a (1 row), b (0 rows)"
    assert action.payload == DropTables(
        {"connection": "scratch"},
        connection="scratch",
        tables=("a", "b"),
        rows={"a": 1, "b": 0},
        final_backup="backups/_teardown-wipe",
    )


@pytest.mark.parametrize(
    ("seen", "why"),
    [
        (TeardownObservation(gone=True, rows={}), "scratch is already gone"),
        (TeardownObservation(gone=False, rows={}), "no listed table is left in scratch"),
    ],
)
def test_nothing_left_is_a_no_op(seen: TeardownObservation, why: str) -> None:
    action = _decide(seen)
    assert action.type is ActionType.NOOP and isinstance(action.payload, Unchanged)
    assert action.reasons == (why,)


def test_without_final_backup_the_plan_says_so_and_the_payload_takes_none() -> None:
    spec = Teardown(connection="scratch", final_backup=False)
    action = _decide(TeardownObservation(gone=False, rows={"a": 3}), spec)
    assert action.reasons[1] == "no final backup (final_backup: false)"
    assert isinstance(action.payload, DropTables) and action.payload.final_backup is None


def test_a_protected_connection_refuses_the_teardown() -> None:
    with pytest.raises(PlanError, match="protected"):
        _decide(TeardownObservation(gone=False, rows={"a": 1}), protected=True)


PLANNED = DropTables({}, connection="scratch", tables=("a", "b"), rows={"a": 1, "b": 0})


def test_a_table_that_appeared_or_grew_since_the_plan_is_named() -> None:
    assert moved_since(PLANNED, {"a": 1, "b": 0}, listed_only=False) == []
    assert moved_since(PLANNED, {"a": 1}, listed_only=False) == []  # dropped already: fine
    assert moved_since(PLANNED, {"a": 1, "b": 0, "c": 0}, listed_only=False) == [
        "table c appeared in scratch (the plan did not show it)"
    ]
    assert moved_since(PLANNED, {"a": 4, "b": 0}, listed_only=True) == [
        "table a in scratch holds 4 rows, the plan showed 1"
    ]
    # A teardown of listed tables never drops another, so a new one is no concern of it.
    assert moved_since(PLANNED, {"a": 1, "b": 0, "c": 9}, listed_only=True) == []


TEARDOWN = """\
version: 1
connections:
  scratch: {driver: sqlite, database: data/scratch.db}
teardowns:
  wipe: {connection: scratch, final_backup: false}
"""


def test_a_saved_teardown_plan_refuses_a_table_created_after_it(
    capsys: pytest.CaptureFixture[str],
    write_manifest,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    (tmp_path / "data").mkdir()
    with sqlite3.connect(tmp_path / "data/scratch.db") as db:
        db.executescript("CREATE TABLE a (x); INSERT INTO a VALUES (1); CREATE TABLE b (x);")
    manifest = write_manifest(TEARDOWN)
    plan_file = tmp_path / "plan.json"
    planned = run_cli(capsys, "plan", manifest, "-o", plan_file)
    assert "drop 2 tables in scratch: a (1 row), b (0 rows)" in planned.out
    with sqlite3.connect(tmp_path / "data/scratch.db") as db:
        db.execute("CREATE TABLE c_created_after_plan (x)")

    refused = run_cli(capsys, "apply", plan_file, "--allow-destroy")
    assert refused.code == 1
    assert "teardown.wipe: failed: not applied, the plan no longer holds" in refused.err
    assert "table c_created_after_plan appeared in scratch (the plan did not show it)" in (
        refused.err
    )
    scratch = sqlite_url(tmp_path / "data/scratch.db")
    assert table_names(scratch) == ["a", "b", "c_created_after_plan"]

    replanned = run_cli(capsys, "plan", manifest, "-o", plan_file)
    assert "drop 3 tables in scratch" in replanned.out
    applied = run_cli(capsys, "apply", plan_file, "--allow-destroy")
    assert applied.code == 0, applied.text
    assert "dropped a, b, c_created_after_plan" in applied.out
    assert table_names(scratch) == []
