"""migration: what kind of change its plan is, from its record, its spec and what changed in
the data, without a database."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan.checksum import ChecksumMethod, TableFingerprint
from dsdb_plan.fingerprint import Fingerprint
from dsdb_plan.kinds.base import make_record
from dsdb_plan.kinds.migration import (
    decide,
    plan_still_holds,
    unchanged_moved,
    unchanged_tables,
)
from dsdb_plan.migrate.run import TableRun
from dsdb_plan.migrate.subset import TableSelection
from dsdb_plan.payloads import RecordSettings, Unchanged
from dsdb_plan.plan import Action, ActionType
from dsdb_plan.portable import ColumnSchema, ForeignKeySchema, TableSchema

ADDRESS = "migration.out"
DOCUMENT: dict[str, Any] = {"from": "local", "to": "copy", "mode": "upsert", "batch_size": 10}


def _record(document: dict[str, Any] = DOCUMENT):  # type: ignore[no-untyped-def]
    return make_record(ADDRESS, "migration", document)


@pytest.mark.parametrize(
    ("record", "document", "changes", "resume", "expected"),
    [
        (None, DOCUMENT, [], None, (ActionType.CREATE, [])),
        (None, DOCUMENT, [], "resuming", (ActionType.CREATE, ["resuming"])),
        (
            _record({**DOCUMENT, "mode": "append"}),
            DOCUMENT,
            ["ignored: the spec decides"],
            None,
            (ActionType.UPDATE, ["mode: append → upsert", "table gone stays"]),
        ),
        (
            _record(),
            DOCUMENT,
            ["source table a changed"],
            None,
            (ActionType.RESYNC, ["source table a changed"]),
        ),
        (_record(), DOCUMENT, [], "resuming", (ActionType.RESYNC, ["resuming"])),
    ],
)
def test_the_change_type_and_its_first_reasons(
    record: Any, document: dict[str, Any], changes: list[str], resume: str | None, expected: Any
) -> None:
    assert decide(ADDRESS, record, document, changes, ["table gone stays"], resume) == expected


def test_nothing_changed_is_a_no_op_and_only_settings_changed_records_them() -> None:
    same = decide(ADDRESS, _record(), DOCUMENT, [], [])
    assert isinstance(same, Action) and same.type is ActionType.NOOP
    assert isinstance(same.payload, Unchanged)
    settings = decide(ADDRESS, _record(), {**DOCUMENT, "batch_size": 500}, [], [])
    assert isinstance(settings, Action) and settings.type is ActionType.UPDATE
    assert isinstance(settings.payload, RecordSettings)
    assert settings.reasons == (
        "batch_size: 10 → 500",
        "source and target unchanged since the last apply",
    )


COUNTS = {**DOCUMENT, "verify": "counts"}


def test_raising_verification_to_content_compares_every_table_and_lowering_it_records_it() -> None:
    kept = decide(ADDRESS, _record(COUNTS), COUNTS, [], [])
    assert isinstance(kept, Action) and kept.type is ActionType.NOOP

    raised = decide(ADDRESS, _record(COUNTS), DOCUMENT, [], [])
    assert not isinstance(raised, Action)  # a copy, of what differs, verified by content
    assert raised[0] is ActionType.UPDATE
    assert raised[1][0].startswith("verify: counts → content: the last apply compared row")
    assert len(raised[1]) == 1  # the level says it once, not again as a removed setting
    changed = decide(ADDRESS, _record(COUNTS), DOCUMENT, ["source table a changed"], [])
    assert not isinstance(changed, Action) and changed[0] is ActionType.UPDATE
    assert changed[1][-1] == "source table a changed"

    lowered = decide(ADDRESS, _record(), COUNTS, [], [])
    assert isinstance(lowered, Action) and lowered.type is ActionType.UPDATE
    assert isinstance(lowered.payload, RecordSettings)  # nothing to copy to prove less
    assert lowered.reasons == (
        "verify: set to counts",
        "source and target unchanged since the last apply",
    )


def _read(token: str | None, **tables: TableFingerprint) -> Fingerprint:
    return Fingerprint(dict(tables), token)


_A = TableFingerprint(3, ChecksumMethod.POSTGRESQL_ROW_HASH, "aa", token="x1")
_A_AGAIN = TableFingerprint(3, ChecksumMethod.POSTGRESQL_ROW_HASH, "aa", token="x2")
_A_CHANGED = TableFingerprint(3, ChecksumMethod.POSTGRESQL_ROW_HASH, "ab")
_COUNTED = TableFingerprint(3, ChecksumMethod.COUNTED, "")


@pytest.mark.parametrize(
    ("planned", "read", "holds"),
    [
        # The database's token is the plan's: nothing was written since, counts or not.
        (_read("t", a=_COUNTED), _read("t", a=_COUNTED), True),
        (_read("t", a=_COUNTED), _read("u", a=_COUNTED), False),
        # No token, or another one: the content of every table decides.
        (_read(None, a=_A, b=_A), _read(None, a=_A_AGAIN, b=_A), True),
        (_read("t", a=_A), _read("u", a=_A), True),
        (_read(None, a=_A, b=_A), _read(None, a=_A, b=_A_CHANGED), False),
        (_read(None, a=_A), _read(None, a=_A, b=_A), False),  # a table the plan did not read
        (_read(None), _read(None), False),
    ],
)
def test_the_plan_s_findings_hold_while_the_source_is_the_one_it_read(
    planned: Fingerprint, read: Fingerprint, holds: bool
) -> None:
    assert plan_still_holds(planned, read) is holds


# -- which tables a resync leaves as they are ---------------------------------------------


def _run(name: str, *, mode: str = "upsert", parent: str | None = None, where: bool = False):  # type: ignore[no-untyped-def]
    keys = (ForeignKeySchema(None, ("parent_id",), parent, ("id",)),) if parent else ()
    columns = (ColumnSchema("id", "integer"), ColumnSchema("parent_id", "integer"))
    schema = TableSchema(name, columns, ("id",), keys)
    filtered = sa.column("id") > 1 if where else None
    selection = TableSelection(
        name, f"{name}_t", sa.table(name), schema, ("id",), filtered, "listed"
    )
    return TableRun(selection, mode)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("runs", "moved", "left"),
    [
        ([_run("a"), _run("b")], {"a"}, ["b"]),
        ([_run("a"), _run("b")], {"b_t"}, ["a"]),  # b's target table drifted
        ([_run("a"), _run("b")], set(), ["a", "b"]),
        # A filtered table's rows may follow other tables' rows: it is always read.
        ([_run("a"), _run("b", where=True)], {"a"}, []),
        # A replaced or mirrored parent may lose rows its children point at.
        ([_run("a", mode="replace"), _run("b", parent="a")], {"a"}, []),
        ([_run("a", mode="mirror"), _run("b", parent="a")], {"a"}, []),
        ([_run("a"), _run("b", parent="a")], {"a"}, ["b"]),
        ([_run("a", mode="replace"), _run("b", parent="a")], {"b"}, ["a"]),
    ],
)
def test_a_resync_leaves_alone_whole_tables_that_did_not_move(
    runs: list[Any], moved: set[str], left: list[str]
) -> None:
    assert unchanged_tables(runs, moved) == left


def test_apply_refuses_when_a_table_the_plan_left_alone_has_changed() -> None:
    planned = Fingerprint({"a": TableFingerprint(3, ChecksumMethod.PYTHON_ROW_HASH, "01")})
    same = Fingerprint({"a": TableFingerprint(3, ChecksumMethod.PYTHON_ROW_HASH, "01")})
    moved = Fingerprint({"a": TableFingerprint(3, ChecksumMethod.PYTHON_ROW_HASH, "02")})
    assert unchanged_moved(["a"], planned, same) == []
    assert unchanged_moved(["a"], planned, moved) == [
        "source table a changed since the plan, which left it as it was"
    ]
    assert unchanged_moved([], planned, moved) == []
