"""Corrupted backups: every inconsistency between `backup.json`, the data files and the
state's record of the backup is refused before a restore writes anything.

Each case damages a backup of three tables (the last one of 3,000 rows) and says the error
it must give: from the backup alone, and where the state (or the `ConnectionManager` that
took the backup) recorded what it held. Through the library, `dsdb backups verify` and
`dsdb apply`, the error is exact and the target keeps its tables and rows.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import dsdb_plan as dsdb
from dsdb_plan.archive import (
    BackupInfo,
    check_backup,
    new_backup_id,
    read_backup_info,
    restore_backup,
    verify_backup,
    write_backup,
)
from dsdb_plan.archive.columnar import ParquetWriter
from dsdb_plan.archive.datafile import PARQUET_SUFFIX
from dsdb_plan.archive.format import encode_block
from dsdb_plan.errors import BackupError
from dsdb_plan.state import open_state
from tests.helpers import EVERY_DATABASE, database, run_cli, sqlite_url

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
FLIGHTS = 3000
SCHEMA = """
CREATE TABLE carriers (code VARCHAR(8) PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE planes (tail VARCHAR(8) PRIMARY KEY, seats INTEGER NOT NULL);
CREATE TABLE flights (
    id INTEGER PRIMARY KEY,
    carrier VARCHAR(8) NOT NULL REFERENCES carriers (code),
    tail VARCHAR(8) NOT NULL REFERENCES planes (tail),
    delay REAL
);
"""
#: What the target holds before each restore, which a refused restore must leave as it is.
TARGET_ROWS = {
    "carriers": [("ZZ", "kept carrier")],
    "planes": [("N-KEPT", 9)],
    "flights": [(77, "ZZ", "N-KEPT", 1.5)],
}


def _fill_source(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA)
        db.executemany("INSERT INTO carriers VALUES (?, ?)", [("UA", "United"), ("AA", "Amer")])
        db.executemany("INSERT INTO planes VALUES (?, ?)", [(f"N{i}", 100 + i) for i in range(40)])
        db.executemany(
            "INSERT INTO flights VALUES (?, ?, ?, ?)",
            [(i, ("UA", "AA")[i % 2], f"N{i % 40}", i / 4) for i in range(1, FLIGHTS + 1)],
        )


def _fill_target(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.exec_driver_sql(statement)
        for table, rows in TARGET_ROWS.items():
            marks = ", ".join(["?" if engine.dialect.name == "sqlite" else "%s"] * len(rows[0]))
            conn.exec_driver_sql(f"INSERT INTO {table} VALUES ({marks})", rows)


def _contents(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of `engine` with its rows, sorted."""
    with engine.connect() as conn:
        return {
            name: sorted(tuple(row) for row in conn.exec_driver_sql(f"SELECT * FROM {name}"))
            for name in sorted(sa.inspect(conn).get_table_names())
        }


# -- the damage --------------------------------------------------------------------------


def _metadata(info: BackupInfo) -> Path:
    return info.path / "backup.json"


def _flights(info: BackupInfo) -> Path:
    return info.path / info.file_for("flights").name


def _edit_metadata(info: BackupInfo, edit: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(_metadata(info).read_text())
    edit(data)
    _metadata(info).write_text(json.dumps(data))


def _flights_entry(data: dict[str, Any]) -> dict[str, Any]:
    return next(entry for entry in data["files"] if entry["table"] == "flights")


def _describe_flights_file(info: BackupInfo) -> None:
    """Make backup.json say of the flights file what it now is (its size and SHA-256)."""
    content = _flights(info).read_bytes()

    def describe(data: dict[str, Any]) -> None:
        _flights_entry(data).update(size=len(content), sha256=hashlib.sha256(content).hexdigest())

    _edit_metadata(info, describe)


def _overstate_rows(info: BackupInfo) -> None:
    _edit_metadata(info, lambda data: _flights_entry(data).update(rows=FLIGHTS + 1))


def _remove_entry(info: BackupInfo) -> None:
    _edit_metadata(info, lambda data: data["files"].remove(_flights_entry(data)))


def _rewrite_flights(info: BackupInfo) -> None:
    """Other rows, as a well-formed data file that backup.json then describes exactly."""
    rows = [(i, "UA", "N1", -1.0) for i in range(1, FLIGHTS + 1)]
    if _flights(info).suffix == PARQUET_SUFFIX:
        _flights(info).unlink()
        writer = ParquetWriter(_flights(info), info.table("flights"))
        writer.write_rows(rows)
        writer.close()
    else:
        _flights(info).write_bytes(gzip.compress(encode_block(rows), mtime=0))
    _describe_flights_file(info)


def _flip_a_byte(info: BackupInfo) -> None:
    data = bytearray(_flights(info).read_bytes())
    data[len(data) // 2] ^= 0x01
    _flights(info).write_bytes(bytes(data))


def _truncate(info: BackupInfo) -> None:
    _flights(info).write_bytes(_flights(info).read_bytes()[:-10])


def _delete_file(info: BackupInfo) -> None:
    _flights(info).unlink()


def _add_file(info: BackupInfo) -> None:
    (info.path / "0009-stowaway.jsonl.gz").write_bytes(_flights(info).read_bytes())


def _corrupt_stream(info: BackupInfo) -> None:
    """A deflate stream (a Parquet page) that no longer decodes (matches its CRC), under a
    SHA-256 updated to match."""
    data = bytearray(_flights(info).read_bytes())
    data[30] ^= 0xFF
    _flights(info).write_bytes(bytes(data))
    _describe_flights_file(info)


#: What reading a data file damaged by `_corrupt_stream` finds, by the file's suffix.
STREAM_DAMAGE = {
    ".gz": "Error -1 Invalid deflate block found",
    PARQUET_SUFFIX: "could not verify page integrity, CRC checksum verification failed for "
    "page_ordinal 0",
}


def _delete_metadata(info: BackupInfo) -> None:
    _metadata(info).unlink()


def _break_json(info: BackupInfo) -> None:
    _metadata(info).write_text('{"format": "dsdb-backup", "id": ')


def _drop_a_field(info: BackupInfo) -> None:
    _edit_metadata(info, lambda data: data["files"][1].pop("sha256"))


def _add_a_table(info: BackupInfo) -> None:
    def add(data: dict[str, Any]) -> None:
        data["tables"].append({**data["tables"][0], "name": "ghosts"})

    _edit_metadata(info, add)


Expected = Callable[[BackupInfo], str]


@dataclass(frozen=True)
class Case:
    """One way a backup goes wrong, with the error it gives from the backup alone
    (`alone`; None when the backup alone is consistent) and against a record of it."""

    damage: Callable[[BackupInfo], None]
    alone: Expected | None
    recorded: Expected
    seen_by_plan_alone: bool  # found by a plan's metadata checks, without a record
    seen_by_plan_recorded: bool


def _sha_mismatch(info: BackupInfo) -> str:
    return (
        f"backup {info.id}: data file {_flights(info)} does not match its SHA-256 "
        "(damaged or altered since the backup was taken)"
    )


def _unlike_record(field: str, now: object, then: object) -> Expected:
    return lambda info: (
        f"backup {info.id}: data file {_flights(info)}: {_metadata(info)} gives {field} {now}, "
        f"the state recorded {then} when the backup was taken"
    )


def _recorded_sha(info: BackupInfo) -> str:
    return info.file_for("flights").sha256


def _sha_unlike_record(info: BackupInfo) -> str:
    now = read_backup_info(info.path).file_for("flights").sha256
    return _unlike_record("sha256", now, _recorded_sha(info))(info)


def _no_file_for(table: str) -> Expected:
    return lambda info: (
        f"backup {info.id}: {_metadata(info)} lists table {table!r} but no data file for it"
    )


def _truncated(info: BackupInfo) -> str:
    size = info.file_for("flights").size
    return (
        f"backup {info.id}: data file {_flights(info)} has {size - 10:,} bytes, "
        f"{_metadata(info)} says {size:,} (truncated or altered)"
    )


def _missing(info: BackupInfo) -> str:
    return f"backup {info.id}: data file {_flights(info)} is missing"


def _extra(info: BackupInfo) -> str:
    return (
        f"backup {info.id}: {info.path / '0009-stowaway.jsonl.gz'} is not listed in "
        f"{_metadata(info)} (a file added to the backup, or its entry removed from backup.json)"
    )


def _no_metadata(info: BackupInfo) -> str:
    return f"not a backup: {_metadata(info)} is missing"


def _not_json(info: BackupInfo) -> str:
    return (
        f"backup metadata {_metadata(info)} is not JSON: "
        "Expecting value: line 1 column 33 (char 32)"
    )


def _lacks_field(info: BackupInfo) -> str:
    return f"backup metadata {_metadata(info)} is garbled: files.1: lacks field 'sha256'"


CASES = {
    "rows overstated": Case(
        _overstate_rows,
        alone=lambda info: (
            f"backup {info.id}: data file {_flights(info)} holds 3,000 rows, "
            f"{_metadata(info)} says 3,001"
        ),
        recorded=_unlike_record("rows", FLIGHTS + 1, FLIGHTS),
        seen_by_plan_alone=False,
        seen_by_plan_recorded=True,
    ),
    "entry removed": Case(
        _remove_entry,
        alone=_no_file_for("flights"),
        recorded=lambda info: (
            f"backup {info.id}: data file {_flights(info)} was recorded in state when the "
            f"backup was taken, but {_metadata(info)} no longer lists it"
        ),
        seen_by_plan_alone=True,
        seen_by_plan_recorded=True,
    ),
    "file rewritten, backup.json updated": Case(
        _rewrite_flights,
        alone=None,
        recorded=_sha_unlike_record,
        seen_by_plan_alone=False,
        seen_by_plan_recorded=True,
    ),
    "byte flipped": Case(
        _flip_a_byte,
        alone=_sha_mismatch,
        recorded=_sha_mismatch,
        seen_by_plan_alone=False,
        seen_by_plan_recorded=False,
    ),
    "truncated": Case(
        _truncate,
        alone=_truncated,
        recorded=_truncated,
        seen_by_plan_alone=True,
        seen_by_plan_recorded=True,
    ),
    "file missing": Case(
        _delete_file,
        alone=_missing,
        recorded=_missing,
        seen_by_plan_alone=True,
        seen_by_plan_recorded=True,
    ),
    "extra file": Case(
        _add_file,
        alone=_extra,
        recorded=_extra,
        seen_by_plan_alone=True,
        seen_by_plan_recorded=True,
    ),
    "corrupt data stream": Case(
        _corrupt_stream,
        alone=lambda info: (
            f"backup {info.id}: data file {_flights(info)} is damaged: "
            + STREAM_DAMAGE[_flights(info).suffix]
        ),
        recorded=_sha_unlike_record,
        seen_by_plan_alone=False,
        seen_by_plan_recorded=True,
    ),
    "backup.json missing": Case(
        _delete_metadata,
        alone=_no_metadata,
        recorded=_no_metadata,
        seen_by_plan_alone=True,
        seen_by_plan_recorded=True,
    ),
    "backup.json not JSON": Case(
        _break_json,
        alone=_not_json,
        recorded=_not_json,
        seen_by_plan_alone=True,
        seen_by_plan_recorded=True,
    ),
    "backup.json lacks a field": Case(
        _drop_a_field,
        alone=_lacks_field,
        recorded=_lacks_field,
        seen_by_plan_alone=True,
        seen_by_plan_recorded=True,
    ),
    "schema names a table with no file": Case(
        _add_a_table,
        alone=_no_file_for("ghosts"),
        recorded=lambda info: (
            f"backup {info.id}: {_metadata(info)} lists table 'ghosts', which the state did "
            "not record when the backup was taken"
        ),
        seen_by_plan_alone=True,
        seen_by_plan_recorded=True,
    ),
}
ALONE = [name for name, case in CASES.items() if case.alone is not None]


MANIFEST = """\
version: 1
connections:
  origin: {driver: sqlite, database: origin.db}
  target: {driver: sqlite, database: target.db}
backups:
  nightly: {connection: origin}
restores:
  back: {SOURCE, to: target, replace_existing: true}
"""


@pytest.fixture
def origin(tmp_path: Path) -> sa.Engine:
    """The SQLite database backed up: three tables, parents first, 3,000 flights."""
    _fill_source(tmp_path / "origin.db")
    engine = sa.create_engine(sqlite_url(tmp_path / "origin.db"))
    yield engine
    engine.dispose()


@pytest.fixture
def target(tmp_path: Path) -> sa.Engine:
    """A SQLite target holding tables of the same names with rows of its own."""
    engine = sa.create_engine(sqlite_url(tmp_path / "target.db"))
    _fill_target(engine)
    yield engine
    engine.dispose()


def _untouched(engine: sa.Engine) -> None:
    assert _contents(engine) == {table: sorted(rows) for table, rows in TARGET_ROWS.items()}


@pytest.fixture(params=["parquet", "jsonl"])
def info(request: pytest.FixtureRequest, tmp_path: Path, origin: sa.Engine) -> BackupInfo:
    """A backup of `origin`, as taken: in Parquet (format version 3, the default) and in
    JSON lines (version 2, which older backups are in)."""
    return write_backup(origin, tmp_path / "backups", new_backup_id(NOW), data_format=request.param)


def _refusal(action: Callable[[], object]) -> str:
    """The message of the `BackupError` that `action` raises."""
    with pytest.raises(BackupError) as raised:
        action()
    return raised.value.message


# -- the library -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALONE)
def test_a_damaged_backup_is_refused_before_a_restore_writes(
    info: BackupInfo, target: sa.Engine, name: str
) -> None:
    case = CASES[name]
    assert case.alone is not None
    case.damage(info)
    expected = case.alone(info)
    assert _refusal(lambda: verify_backup(info.path)) == expected
    assert _refusal(lambda: restore_backup(info.path, target, replace_existing=True)) == expected
    _untouched(target)


@pytest.mark.parametrize("name", CASES)
def test_backup_json_is_held_to_the_record_of_the_backup(
    info: BackupInfo, target: sa.Engine, name: str
) -> None:
    CASES[name].damage(info)
    expected = CASES[name].recorded(info)
    recorded = info.to_dict()
    assert _refusal(lambda: verify_backup(info.path, recorded=recorded)) == expected
    message = _refusal(
        lambda: restore_backup(info.path, target, recorded=recorded, replace_existing=True)
    )
    assert message == expected
    _untouched(target)


def test_a_rewritten_file_that_backup_json_describes_is_a_backup_of_other_rows(
    info: BackupInfo, target: sa.Engine
) -> None:
    """Without a record of what the backup held, a consistent rewrite cannot be told from
    a backup: what makes it suspect is only the record."""
    _rewrite_flights(info)
    restore_backup(info.path, target, replace_existing=True)
    with target.connect() as conn:
        delays = conn.exec_driver_sql("SELECT DISTINCT delay FROM flights").scalars().all()
    assert delays == [-1.0]


@pytest.mark.parametrize("kind", EVERY_DATABASE)
@pytest.mark.parametrize("name", ["rows overstated", "entry removed", "byte flipped"])
def test_a_server_target_keeps_its_rows_when_the_backup_is_damaged(
    tmp_path: Path, request: pytest.FixtureRequest, info: BackupInfo, kind: str, name: str
) -> None:
    engine = database(request, tmp_path, kind)
    _fill_target(engine)
    CASES[name].damage(info)
    expected = CASES[name].alone(info)  # type: ignore[misc]
    assert _refusal(lambda: restore_backup(info.path, engine, replace_existing=True)) == expected
    _untouched(engine)


@pytest.mark.parametrize("name", CASES)
def test_connection_manager_holds_a_backup_it_took_to_what_it_held(
    tmp_path: Path, origin: sa.Engine, target: sa.Engine, name: str
) -> None:
    mngr = dsdb.ConnectionManager(
        {
            "origin": {"driver": "sqlite", "database": str(tmp_path / "origin.db")},
            "target": {"driver": "sqlite", "database": str(tmp_path / "target.db")},
        }
    )
    mngr.backup_root = tmp_path / "backups"
    try:
        info = mngr.backup("origin")
        CASES[name].damage(info)
        with pytest.raises(BackupError) as restored:
            mngr.restore("origin", "target", replace_existing=True)
    finally:
        mngr.close()
    assert restored.value.message == CASES[name].recorded(info)
    _untouched(target)


# -- the command line --------------------------------------------------------------------


def _backed_up(capsys: pytest.CaptureFixture[str], manifest: Path) -> BackupInfo:
    """Apply the backup alone and return what it took, as the state recorded it."""
    taken = run_cli(capsys, "apply", manifest, "--auto-approve", "--target", "backup.nightly")
    assert taken.code == 0, taken.text
    record = open_state(".dsdb/state.db", manifest.parent).read().resources["backup.nightly"]
    (artifact,) = record.artifacts
    return BackupInfo.from_dict(artifact, Path(artifact["path"]))


@pytest.mark.parametrize("name", CASES)
def test_backups_verify_names_the_backup_and_the_file(
    capsys: pytest.CaptureFixture[str],
    write_manifest: Callable[[str], Path],
    origin: sa.Engine,
    name: str,
) -> None:
    manifest = write_manifest(MANIFEST.replace("SOURCE", "backup: nightly"))
    info = _backed_up(capsys, manifest)
    assert run_cli(capsys, "backups", "verify", manifest).code == 0
    CASES[name].damage(info)
    verified = run_cli(capsys, "backups", "verify", manifest)
    assert verified.code == 1
    assert verified.err.endswith(f" backup.nightly {info.id}: {CASES[name].recorded(info)}\n")
    assert verified.out == "0 of 1 backup verified.\n"


def _refused(
    capsys: pytest.CaptureFixture[str], manifest: Path, expected: str, at_plan: bool
) -> None:
    """`dsdb plan` fails on `expected` when its checks can see it, and `dsdb apply` fails on
    it in any case, before writing (the caller checks the target). The restore alone is
    planned: a plan of the backup too would take a new one in place of a damaged one."""
    plan = run_cli(capsys, "plan", manifest, "--detailed-exitcode", "--target", "restore.back")
    refused = f"Error: cannot plan:\n  restore.back: {expected}\n"
    if at_plan:
        assert (plan.code, plan.err) == (1, refused)
    else:
        assert plan.code == 2, plan.text
    applied = run_cli(
        capsys, "apply", manifest, "--auto-approve", "--allow-destroy", "--target", "restore.back"
    )
    assert applied.code == 1
    if at_plan:
        assert applied.err == refused
    else:
        assert applied.err.startswith(f"restore.back: failed: {expected}\n")
    state = open_state(".dsdb/state.db", manifest.parent).read()
    assert "restore.back" not in state.resources


@pytest.mark.parametrize("named_by", ["backup", "path"])
@pytest.mark.parametrize("name", CASES)
def test_apply_refuses_a_backup_unlike_its_record_before_writing(
    capsys: pytest.CaptureFixture[str],
    write_manifest: Callable[[str], Path],
    origin: sa.Engine,
    target: sa.Engine,
    name: str,
    named_by: str,
) -> None:
    """Restored as its resource's latest backup, or as a folder that the state recorded."""
    manifest = write_manifest(MANIFEST.replace("SOURCE", "backup: nightly"))
    info = _backed_up(capsys, manifest)
    if named_by == "path":
        manifest.write_text(MANIFEST.replace("SOURCE", f"path: '{info.path}'"))
    case = CASES[name]
    case.damage(info)
    _refused(capsys, manifest, case.recorded(info), case.seen_by_plan_recorded)
    _untouched(target)


@pytest.mark.parametrize("name", ALONE)
def test_apply_refuses_a_damaged_backup_folder_before_writing(
    capsys: pytest.CaptureFixture[str],
    write_manifest: Callable[[str], Path],
    info: BackupInfo,
    target: sa.Engine,
    name: str,
) -> None:
    manifest = write_manifest(MANIFEST.replace("SOURCE", f"path: '{info.path}'"))
    case = CASES[name]
    assert case.alone is not None
    case.damage(info)
    _refused(capsys, manifest, case.alone(info), case.seen_by_plan_alone)
    _untouched(target)


def test_a_restore_with_nothing_to_do_plans_without_reading_its_backup(
    capsys: pytest.CaptureFixture[str],
    write_manifest: Callable[[str], Path],
    origin: sa.Engine,
    target: sa.Engine,
) -> None:
    """The target holds the backup already: damage to the backup since is for
    `dsdb backups verify` to report, not a reason the plan cannot be made."""
    manifest = write_manifest(MANIFEST.replace("SOURCE", "backup: nightly"))
    info = _backed_up(capsys, manifest)
    restored = run_cli(capsys, "apply", manifest, "--auto-approve", "--allow-destroy")
    assert restored.code == 0, restored.text
    _truncate(info)
    plan = run_cli(capsys, "plan", manifest, "--detailed-exitcode", "--target", "restore.back")
    assert plan.code == 0, plan.text
    verified = run_cli(capsys, "backups", "verify", manifest)
    assert verified.code == 1
    assert verified.err.endswith(f" backup.nightly {info.id}: {_truncated(info)}\n")


def test_a_backup_resource_whose_latest_backup_is_damaged_takes_a_new_one(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest: Callable[[str], Path],
    origin: sa.Engine,
    target: sa.Engine,
) -> None:
    """A backup resource means a verified backup of the data exists: one whose metadata no
    longer holds is replaced, and the restore that follows reads the new one."""
    manifest = write_manifest(MANIFEST.replace("SOURCE", "backup: nightly"))
    info = _backed_up(capsys, manifest)
    _truncate(info)
    plan = run_cli(capsys, "plan", manifest, "--detailed-exitcode")
    assert plan.code == 2, plan.text
    assert f"the latest backup is damaged: {_truncated(info)}\n" in plan.out
    assert "restore the backup that backup.nightly takes in this apply into target" in plan.out
    applied = run_cli(capsys, "apply", manifest, "--auto-approve", "--allow-destroy")
    assert applied.code == 0, applied.text
    assert _contents(target) == _contents(origin)
    assert run_cli(capsys, "plan", manifest, "--detailed-exitcode").code == 0


# -- every other inconsistency, named -----------------------------------------------------


def _entry(data: dict[str, Any], table: str) -> dict[str, Any]:
    return next(entry for entry in data["files"] if entry["table"] == table)


METADATA_EDITS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "a file listed twice": (
        lambda data: data["files"].append(dict(_entry(data, "planes"))),
        "lists data file {planes} twice",
    ),
    "two files for one table": (
        lambda data: data["files"].append({**_entry(data, "planes"), "name": "0009-b.jsonl.gz"}),
        "lists 2 data files for table 'planes'",
    ),
    "a file for a table the schema lacks": (
        lambda data: _entry(data, "planes").update(table="jets"),
        "lists data file {folder}/{planes} for table 'jets', which its schema does not have",
    ),
    "a table listed twice": (
        lambda data: data["tables"].append(data["tables"][0]),
        "lists table 'carriers' twice",
    ),
}


@pytest.mark.parametrize("edit", METADATA_EDITS)
def test_backup_json_that_does_not_hold_together_is_named(info: BackupInfo, edit: str) -> None:
    change, problem = METADATA_EDITS[edit]
    _edit_metadata(info, change)
    planes = info.file_for("planes").name
    expected = f"backup {info.id}: {_metadata(info)} " + problem.format(
        folder=info.path, planes=planes
    )
    assert _refusal(lambda: check_backup(info.path)) == expected


GARBLED_FIELDS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "a file name leaving the folder": (
        lambda data: _entry(data, "planes").update(name="../../elsewhere.jsonl.gz"),
        "files.1.name: unsafe data file name '../../elsewhere.jsonl.gz'",
    ),
    "rows below zero": (
        lambda data: _entry(data, "planes").update(rows=-1),
        "files.1.rows: Input should be greater than or equal to 0",
    ),
    "rows as text": (
        lambda data: _entry(data, "planes").update(rows="40"),
        "files.1.rows: Input should be a valid integer",
    ),
    "a SHA-256 that is not one": (
        lambda data: _entry(data, "planes").update(sha256="beef"),
        "files.1.sha256: String should match pattern '^[0-9a-f]{64}$'",
    ),
    "no tables": (lambda data: data.pop("tables"), "lacks field 'tables'"),
    "a column without its type": (
        lambda data: data["tables"][1]["columns"][0].pop("type"),
        "tables.1: lacks field 'type'",
    ),
    "a time that is not one": (
        lambda data: data.update(created_at="yesterday"),
        "created_at: not a time: 'yesterday'",
    ),
    "another format": (
        lambda data: data.update(format="tarball"),
        "not a dsdb backup (format 'tarball')",
    ),
}


@pytest.mark.parametrize("edit", GARBLED_FIELDS)
def test_a_garbled_field_of_backup_json_is_located(info: BackupInfo, edit: str) -> None:
    change, problem = GARBLED_FIELDS[edit]
    _edit_metadata(info, change)
    expected = f"backup metadata {_metadata(info)} is garbled: {problem}"
    assert _refusal(lambda: check_backup(info.path)) == expected


RECORD_EDITS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "another backup": (
        lambda record: record.update(id="20200101T000000.000000Z-000000"),
        "backup 20200101T000000.000000Z-000000: {json} names backup {id} instead: the folder "
        "holds another backup than the state recorded",
    ),
    "a file backup.json added": (
        lambda record: record["files"].remove(_entry(record, "planes")),
        "backup {id}: {json} lists data file {folder}/{planes}, which the state "
        "did not record when the backup was taken",
    ),
    "a table backup.json lost": (
        lambda record: record["tables"].append({**record["tables"][0], "name": "ghosts"}),
        "backup {id}: table 'ghosts' was recorded in state when the backup was taken, but "
        "{json} no longer has it",
    ),
    "a schema changed since": (
        lambda record: record["tables"][1]["columns"][1].update(type="text"),
        "backup {id}: {json}: the schema of table 'planes' is not the one recorded in state "
        "when the backup was taken",
    ),
    "another source": (
        lambda record: record.update(source_dialect="postgresql"),
        "backup {id}: {json} gives source_dialect sqlite, the state recorded postgresql when "
        "the backup was taken",
    ),
    "a garbled record": (
        lambda record: record.pop("files"),
        "the state's record of backup {id} is garbled: lacks field 'files'",
    ),
}


@pytest.mark.parametrize("edit", RECORD_EDITS)
def test_backup_json_unlike_the_state_s_record_is_named(info: BackupInfo, edit: str) -> None:
    record = json.loads(json.dumps(info.to_dict()))
    change, problem = RECORD_EDITS[edit]
    change(record)
    expected = problem.format(
        id=info.id, json=_metadata(info), folder=info.path, planes=info.file_for("planes").name
    )
    assert _refusal(lambda: check_backup(info.path, recorded=record)) == expected
