"""migration: what kind of change its plan is, from its record, its spec and what changed in
the data, without a database."""

from __future__ import annotations

from typing import Any

import pytest

from dsdb_plan.checksum import ChecksumMethod, TableFingerprint
from dsdb_plan.fingerprint import Fingerprint
from dsdb_plan.kinds.base import make_record
from dsdb_plan.kinds.migration import decide, plan_still_holds
from dsdb_plan.payloads import RecordSettings, Unchanged
from dsdb_plan.plan import Action, ActionType

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
