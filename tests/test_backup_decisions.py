"""backup: the plan's decision from the spec, its record and the live data, without a
database."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsdb_plan.checksum import ChecksumMethod, TableFingerprint
from dsdb_plan.fingerprint import Fingerprint
from dsdb_plan.kinds.backup import decide, latest_damage, prune_action, tables_beyond
from dsdb_plan.kinds.base import make_record
from dsdb_plan.models import Backup
from dsdb_plan.payloads import PruneBackups, RecordSettings, TakeBackup, Unchanged
from dsdb_plan.plan import ActionType

ADDRESS = "backup.nightly"
SPEC = Backup(connection="local", keep=2)
DOCUMENT = {"connection": "local", "keep": 2, "tables": None}
PY = ChecksumMethod.PYTHON_ROW_HASH
BEFORE = Fingerprint({"a": TableFingerprint(3, PY, "aa"), "b": TableFingerprint(0, PY, "bb")})
AFTER = Fingerprint({"a": TableFingerprint(4, PY, "ab"), "b": TableFingerprint(0, PY, "bb")})


def _record(tmp_path: Path, document: dict[str, object] = DOCUMENT, ids: int = 1):  # type: ignore[no-untyped-def]
    artifacts = []
    for n in range(ids):
        folder = tmp_path / f"2026110{n}"
        folder.mkdir()
        artifacts.append({"id": f"2026110{n}", "path": str(folder)})
    return make_record(
        ADDRESS, "backup", document, fingerprints={"read": BEFORE.to_dict()}, artifacts=artifacts
    )


def test_a_first_backup_takes_every_table_the_plan_saw() -> None:
    action = decide(ADDRESS, SPEC, DOCUMENT, None, None, BEFORE)
    assert action.type is ActionType.CREATE
    assert action.reasons == ("new backup of local: 2 tables, 3 rows",)
    assert action.payload == TakeBackup(
        DOCUMENT,
        connection="local",
        tables=("a", "b"),
        rows={"a": 3, "b": 0},
        fingerprint=BEFORE.to_dict(),
    )


def test_a_backup_after_a_write_refuses_tables_beyond_those_planned() -> None:
    planned = TakeBackup(
        DOCUMENT,
        connection="local",
        tables=("a", "b"),
        rows={},
        fingerprint={"tables": {}},
        planned_after=("migration.fill",),
    )

    assert tables_beyond(planned, ["a", "b"], None) == []
    assert tables_beyond(planned, ["a", "b", "c"], None) == [
        "table c is in local once migration.fill applied; the plan did not show it"
    ]
    assert tables_beyond(planned, ["a", "b", "c"], ["a", "b"]) == []  # only those listed


def test_unchanged_data_is_a_no_op_and_changed_data_a_resync(tmp_path: Path) -> None:
    record = _record(tmp_path)
    same = decide(ADDRESS, SPEC, DOCUMENT, record, BEFORE, BEFORE)
    assert same.type is ActionType.NOOP and isinstance(same.payload, Unchanged)
    changed = decide(ADDRESS, SPEC, DOCUMENT, record, BEFORE, AFTER)
    assert changed.type is ActionType.RESYNC and isinstance(changed.payload, TakeBackup)
    assert changed.reasons == ("table a changed: 3 → 4 rows",)


def test_a_missing_latest_backup_is_taken_again(tmp_path: Path) -> None:
    record = _record(tmp_path)
    Path(record.artifacts[0]["path"]).rmdir()
    damage = latest_damage(record)
    assert damage is not None and damage.startswith("latest backup 20261100 is missing from ")
    action = decide(ADDRESS, SPEC, DOCUMENT, record, BEFORE, BEFORE, damage)
    assert action.type is ActionType.RESYNC and isinstance(action.payload, TakeBackup)
    assert action.reasons == (damage,)


@pytest.mark.parametrize(
    ("document", "payload"),
    [({**DOCUMENT, "keep": 5}, RecordSettings), ({**DOCUMENT, "tables": ["a"]}, TakeBackup)],
)
def test_a_settings_change_records_it_and_a_data_change_takes_a_backup(
    tmp_path: Path, document: dict[str, object], payload: type
) -> None:
    action = decide(ADDRESS, SPEC, document, _record(tmp_path), BEFORE, BEFORE)
    assert action.type is ActionType.UPDATE and isinstance(action.payload, payload)


def test_prune_lists_exactly_the_ids_past_keep_counting_the_new_backup(tmp_path: Path) -> None:
    record = _record(tmp_path, ids=3)
    taking = decide(ADDRESS, SPEC, DOCUMENT, record, BEFORE, AFTER)
    (prune,) = prune_action(SPEC, record, taking)
    assert prune.payload == PruneBackups(DOCUMENT, ids=("20261101", "20261102"))
    assert prune.destructive and prune.depends_on == (ADDRESS,)
    keeping = decide(ADDRESS, SPEC, DOCUMENT, record, BEFORE, BEFORE)
    (prune,) = prune_action(SPEC, record, keeping)
    assert prune.payload == PruneBackups(DOCUMENT, ids=("20261102",))
