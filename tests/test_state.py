"""The state store: one conformance suite for every store, then what only SQLite has.

Each conformance test runs once per entry of `STORE_FACTORIES`. A store is reached through
`open_state(location, base_dir)` only, so a child process can open the same store from its
location. The shared PostgreSQL store (issue 5) runs the same tests on the test server;
what only it has is in tests/test_state_postgres.py.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from dsdb_plan.errors import LockError, StateError
from dsdb_plan.redact import register_secret
from dsdb_plan.state import (
    HistoryEntry,
    LockInfo,
    PostgresStateStore,
    ResourceRecord,
    SqliteStateStore,
    StateSnapshot,
    StateStore,
    open_state,
    resource_history,
)
from dsdb_plan.state.postgres_backend import SCHEMA as STATE_SCHEMA
from dsdb_plan.state.sqlite_backend import switch_to_wal
from dsdb_plan.state.tables import SCHEMA_VERSION
from tests.servers import ServerDatabase

PROCESS_WAIT_SECONDS = 60  # bound on waiting for a child process; never reached when healthy


@dataclass
class StoreCase:
    """One kind of store under test, as a location a child process can open too."""

    location: str
    base_dir: Path
    exists: Callable[[], bool]  # whether the store has left anything behind
    raw_bytes: Callable[[], bytes]  # everything it has stored, as bytes

    def open(self) -> StateStore:
        return open_state(self.location, self.base_dir)


_SCHEMA_EXISTS = sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :schema")


@contextmanager
def _connect(database: ServerDatabase) -> Iterator[sa.Connection]:
    engine = database.engine()
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def drop_state_schema(database: ServerDatabase) -> None:
    with _connect(database) as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {STATE_SCHEMA} CASCADE"))


def state_rows(database: ServerDatabase) -> bytes:
    """Every row of every table of the PostgreSQL state, as text."""
    with _connect(database) as conn:
        tables = conn.scalars(
            sa.text("SELECT tablename FROM pg_tables WHERE schemaname = :schema ORDER BY 1"),
            {"schema": STATE_SCHEMA},
        ).all()
        rows = [
            text
            for table in tables
            for text in conn.scalars(sa.text(f"SELECT t::text FROM {STATE_SCHEMA}.{table} t"))
        ]
    return "\n".join(rows).encode()


def _sqlite_case(request: pytest.FixtureRequest, tmp_path: Path) -> StoreCase:
    folder = tmp_path / ".dsdb"

    def raw_bytes() -> bytes:
        return b"".join(file.read_bytes() for file in sorted(folder.iterdir()))

    return StoreCase(".dsdb/state.db", tmp_path, folder.exists, raw_bytes)


def _postgres_case(request: pytest.FixtureRequest, tmp_path: Path) -> StoreCase:
    # Skips without a server (fails under DSDB_REQUIRE_SERVERS=1); the fixture empties only
    # the public schema, so the state's own schema is dropped here.
    database: ServerDatabase = request.getfixturevalue("postgres_db")
    drop_state_schema(database)

    def exists() -> bool:
        with _connect(database) as conn:
            return bool(conn.scalar(_SCHEMA_EXISTS, {"schema": STATE_SCHEMA}))

    return StoreCase(database.url_string, tmp_path, exists, lambda: state_rows(database))


STORE_FACTORIES: dict[str, Callable[[pytest.FixtureRequest, Path], StoreCase]] = {
    "sqlite": _sqlite_case,
    "postgresql": _postgres_case,
}
STORE_MARKS = {"postgresql": [pytest.mark.postgres]}


@pytest.fixture(
    params=[pytest.param(name, marks=STORE_MARKS.get(name, [])) for name in sorted(STORE_FACTORIES)]
)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> StoreCase:
    return STORE_FACTORIES[request.param](request, tmp_path)


@pytest.fixture
def store(case: StoreCase) -> Iterator[StateStore]:
    opened = case.open()
    yield opened
    opened.close()


def record(address: str = "backup.nightly", **changes: object) -> ResourceRecord:
    values: dict[str, object] = {
        "address": address,
        "kind": address.split(".")[0],
        "spec": {"connection": "local", "tables": ["flights", "airports"], "keep": 7},
        "spec_digest": "sha256:abc",
        "fingerprints": {"flights": {"rows": 336776, "checksum": "9f2c"}, "note": "žluťoučký"},
        "artifacts": [{"path": "backups/nightly/flights.jsonl.gz", "bytes": 10, "sha256": "00"}],
        "status": "applied",
        "updated_at": "2026-11-27T05:10:00Z",
    }
    values.update(changes)
    return ResourceRecord(**values)  # type: ignore[arg-type]


def entry(address: str, action: str = "create", **changes: object) -> HistoryEntry:
    values: dict[str, object] = {
        "address": address,
        "action": action,
        "user": "analyst",
        "host": "laptop",
        "started_at": "2026-11-27T05:10:00Z",
        "finished_at": "2026-11-27T05:10:03Z",
        "outcome": "ok",
    }
    values.update(changes)
    return HistoryEntry(**values)  # type: ignore[arg-type]


# -- child processes ---------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from dsdb_plan.state import ResourceRecord, open_state

    mode, location, base_dir = sys.argv[1:4]
    store = open_state(location, Path(base_dir))
    if mode == "hold":
        with store.lock("apply", user="analyst") as info:
            print(json.dumps(info.to_dict()), flush=True)
            sys.stdin.readline()  # hold until the test says so
    elif mode == "write":
        # Each resource: a checkpoint, then the record, which clears it in the same write.
        index = len(store.read().resources)
        while True:
            address = f"backup.r{index}"
            store.save_checkpoint(address, {"done": index})
            store.put_resource(ResourceRecord(
                address, "backup", {"i": index}, "d", {}, [], "applied", "now"))
            index += 1
    store.close()
    """
)


def _child(mode: str, case: StoreCase) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, mode, case.location, str(case.base_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(PROCESS_WAIT_SECONDS)


@contextmanager
def lock_held_elsewhere(case: StoreCase) -> Iterator[tuple[subprocess.Popen[str], LockInfo]]:
    """A separate process holding the lock until its stdin gets a line (or it is killed)."""
    process = _child("hold", case)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the child holds the lock
        assert line, "the child process died before taking the lock"
        yield process, LockInfo.from_dict(json.loads(line))
    finally:
        if process.poll() is None and process.stdin is not None:
            process.stdin.write("release\n")
            process.stdin.flush()
        try:
            process.wait(PROCESS_WAIT_SECONDS)
        finally:
            _stop(process)


def _release(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.write("release\n")
    process.stdin.flush()
    assert process.wait(PROCESS_WAIT_SECONDS) == 0


# -- conformance: every store ------------------------------------------------------------------


def test_reading_a_new_store_is_empty_and_creates_nothing(case: StoreCase) -> None:
    store = case.open()
    assert store.read() == StateSnapshot.empty()
    assert store.read().serial == 0
    assert store.history() == []
    assert store.lock_holder() is None
    with pytest.raises(LockError, match="not locked"):
        store.force_unlock("no-such-lock")
    store.close()
    assert not case.exists()


def test_serial_grows_by_one_per_state_change_and_never_otherwise(store: StateStore) -> None:
    assert store.put_resource(record("backup.a")) == 1
    assert store.read().serial == 1
    assert store.put_resource(record("backup.a")) == 1, "an identical record changes nothing"
    assert store.put_resource(record("backup.a", status="failed")) == 2
    assert store.save_checkpoint("backup.b", {"table": "flights", "offset": 100}) == 3
    assert store.save_checkpoint("backup.b", {"table": "flights", "offset": 100}) == 3
    assert store.save_checkpoint("backup.b", {"table": "flights", "offset": 200}) == 4
    assert store.clear_checkpoint("backup.b") == 5
    assert store.clear_checkpoint("backup.b") == 5, "nothing to clear"
    store.append_history(entry("backup.a"))
    with store.lock("apply", user="analyst"):
        pass
    store.lock_holder()
    store.history()
    assert store.read().serial == 5, "history, locks and reads are not state changes"
    assert store.rename_resource("backup.a", "backup.c") == 6
    assert store.remove_resource("backup.c") == 7
    assert store.read().serial == 7


def test_lineage_is_set_once_and_survives_reopening(case: StoreCase) -> None:
    first = case.open()
    first.put_resource(record("backup.a"))
    lineage = first.read().lineage
    assert uuid.UUID(lineage)
    first.close()

    second = case.open()
    assert second.read().lineage == lineage
    second.put_resource(record("backup.b"))
    second.remove_resource("backup.a")
    assert second.read().lineage == lineage
    second.close()


def test_resource_round_trips(case: StoreCase) -> None:
    written = record(
        "migration.ua-winter",
        spec={"from": "local", "to": "prod", "where": {"month": {"in": [1, 2]}}, "n": None},
        fingerprints={"source": {"flights": [336776, 1.5, True]}},
    )
    store = case.open()
    store.put_resource(written)
    store.close()

    reopened = case.open()
    assert reopened.read().resources == {"migration.ua-winter": written}
    reopened.close()


def test_put_resource_clears_the_checkpoint_in_the_same_write(store: StateStore) -> None:
    serial = store.save_checkpoint("backup.a", {"table": "flights", "rows_done": 5000})
    assert store.read().checkpoints == {"backup.a": {"table": "flights", "rows_done": 5000}}

    assert store.put_resource(record("backup.a")) == serial + 1, "one write for both"
    snapshot = store.read()
    assert snapshot.checkpoints == {}
    assert set(snapshot.resources) == {"backup.a"}

    store.save_checkpoint("backup.a", {"rows_done": 10})
    store.put_resource(record("backup.a", status="running"), clear_checkpoint=False)
    assert store.read().checkpoints == {"backup.a": {"rows_done": 10}}


def test_rename_and_remove(store: StateStore) -> None:
    store.put_resource(record("backup.old"))
    store.save_checkpoint("backup.old", {"rows_done": 1})
    store.put_resource(record("backup.other"))

    store.rename_resource("backup.old", "backup.new")
    snapshot = store.read()
    assert set(snapshot.resources) == {"backup.new", "backup.other"}
    assert snapshot.resources["backup.new"] == record("backup.new", kind="backup")
    assert snapshot.checkpoints == {"backup.new": {"rows_done": 1}}

    with pytest.raises(StateError, match="already in state"):
        store.rename_resource("backup.new", "backup.other")
    with pytest.raises(StateError, match=r"backup\.gone is not in state"):
        store.rename_resource("backup.gone", "backup.elsewhere")

    serial = store.remove_resource("backup.new")
    assert set(store.read().resources) == {"backup.other"}
    assert store.read().checkpoints == {}
    with pytest.raises(StateError, match=r"backup\.new is not in state"):
        store.remove_resource("backup.new")
    assert store.read().serial == serial


def test_history_is_newest_first_and_filtered(store: StateStore) -> None:
    store.append_history(entry("backup.a", "create", rows=10, bytes=2048, duration_s=1.5))
    store.append_history(entry("restore.b", "create", outcome="failed", message="disk full"))
    store.append_history(entry("backup.a", "resync", rows=3))

    everything = store.history()
    assert [(e.address, e.action) for e in everything] == [
        ("backup.a", "resync"),
        ("restore.b", "create"),
        ("backup.a", "create"),
    ]
    ids = [e.id for e in everything]
    assert all(isinstance(i, int) for i in ids) and ids == sorted(ids, reverse=True)  # type: ignore[type-var]
    assert everything[2] == entry(
        "backup.a", "create", rows=10, bytes=2048, duration_s=1.5, id=everything[2].id
    )
    assert everything[1].message == "disk full"
    assert [e.action for e in store.history("backup.a")] == ["resync", "create"]
    assert [e.address for e in store.history(limit=2)] == ["backup.a", "restore.b"]
    assert store.history("backup.none") == []


def test_a_rename_is_logged_with_the_lock_holder_and_history_follows_it(
    store: StateStore,
) -> None:
    store.put_resource(record("backup.old"))
    store.append_history(entry("backup.old", "create"))
    store.append_history(entry("backup.old#prune", "destroy"))
    with store.lock("state mv", user="alice"):
        serial = store.rename_resource("backup.old", "backup.new")
    assert store.read().serial == serial, "the log entry is not a state change"
    moved = store.history()[0]
    assert (moved.address, moved.action, moved.user, moved.outcome) == (
        "backup.new",
        "move",
        "alice",
        "ok",
    )
    assert moved.moved_from == "backup.old" and moved.host == socket.gethostname()
    store.append_history(entry("backup.old", "create"))  # a new resource takes the old name

    followed = resource_history(store.history(), "backup.new")
    assert [(e.address, e.action) for e in followed] == [
        ("backup.new", "move"),
        ("backup.old#prune", "destroy"),
        ("backup.old", "create"),
    ]
    assert [e.id for e in resource_history(store.history(), "backup.old")] == [
        store.history()[0].id
    ]


def test_replace_all_writes_the_snapshot_in_one_write(store: StateStore) -> None:
    store.put_resource(record("backup.a"))
    store.put_resource(record("backup.b"))
    before = store.read()

    pushed = StateSnapshot(
        lineage=before.lineage,
        serial=before.serial,
        resources={"backup.c": record("backup.c")},
        checkpoints={"backup.d": {"rows_done": 7}},
    )
    assert store.replace_all(pushed) == before.serial + 1
    after = store.read()
    assert after.resources == pushed.resources
    assert after.checkpoints == pushed.checkpoints
    assert after.lineage == before.lineage
    assert store.replace_all(pushed) == after.serial, "the same content changes nothing"

    with pytest.raises(StateError, match=r"under backup\.x"):
        store.replace_all(StateSnapshot("", 0, {"backup.x": record("backup.y")}, {}))


def test_replace_all_into_a_new_store_keeps_the_pushed_lineage(case: StoreCase) -> None:
    store = case.open()
    lineage = str(uuid.uuid4())
    store.replace_all(StateSnapshot(lineage, 12, {"backup.a": record("backup.a")}, {}))
    assert store.read().lineage == lineage
    assert store.read().serial == 1
    store.close()


def test_lock_is_released_on_exit_and_on_exception(store: StateStore) -> None:
    with store.lock("apply", user="analyst") as info:
        assert store.lock_holder() == info
        assert info.user == "analyst" and info.pid == os.getpid() and info.operation == "apply"
        store.put_resource(record("backup.a"))  # the holder itself may write
    assert store.lock_holder() is None

    with pytest.raises(RuntimeError), store.lock("apply", user="analyst"):
        raise RuntimeError("the apply failed")
    assert store.lock_holder() is None


def test_a_second_process_fails_fast_naming_the_holder(case: StoreCase, store: StateStore) -> None:
    with lock_held_elsewhere(case) as (process, held):
        assert store.lock_holder() == held
        with pytest.raises(LockError) as error, store.lock("apply", user="ci"):
            pytest.fail("took a lock that another process holds")
        message = error.value.message
        assert f"analyst@{socket.gethostname()}" in message
        assert f"(pid {process.pid})" in message
        assert f"dsdb force-unlock {held.id}" in message
        assert "for apply" in message

        with pytest.raises(LockError, match=f"pid {process.pid}"):
            store.put_resource(record("backup.a"))
        assert store.read().serial == 0
        _release(process)
    assert store.lock_holder() is None
    with store.lock("apply", user="ci"):
        pass


def test_force_unlock_with_the_id_from_the_error(case: StoreCase, store: StateStore) -> None:
    with lock_held_elsewhere(case) as (process, held):
        with pytest.raises(LockError) as error, store.lock("apply", user="ci"):
            pass
        found = re.search(r"dsdb force-unlock (\S+)", error.value.message)
        assert found is not None
        lock_id = found.group(1)

        with pytest.raises(LockError, match="does not match"):
            store.force_unlock("not-" + lock_id)
        assert store.lock_holder() == held

        assert store.force_unlock(lock_id) == held
        with store.lock("apply", user="ci") as mine:
            # The old holder finishing must not release the lock it no longer holds.
            _release(process)
            assert store.lock_holder() == mine
        assert store.lock_holder() is None


def test_the_lock_of_a_killed_process_is_taken_over(case: StoreCase, store: StateStore) -> None:
    with lock_held_elsewhere(case) as (process, held):
        assert store.lock_holder() == held
        process.kill()
        process.wait(PROCESS_WAIT_SECONDS)
        with store.lock("apply", user="ci") as mine:
            assert store.lock_holder() == mine
            assert store.put_resource(record("backup.a")) == 1


def test_lock_timeout_waits_then_fails(case: StoreCase, store: StateStore) -> None:
    with lock_held_elsewhere(case) as (process, held):
        started = time.monotonic()
        with (
            pytest.raises(LockError, match=r"waited 0\.5s") as error,
            store.lock("apply", user="ci", timeout=0.5),
        ):
            pass
        assert time.monotonic() - started >= 0.5
        assert held.id in error.value.message

        _release(process)  # freed while we wait: the wait ends with the lock
        with store.lock("apply", user="ci", timeout=PROCESS_WAIT_SECONDS) as mine:
            assert store.lock_holder() == mine


def test_a_write_killed_at_any_instant_leaves_a_consistent_state(case: StoreCase) -> None:
    store = case.open()
    for round_ in range(1, 4):
        process = _child("write", case)
        try:
            deadline = time.monotonic() + PROCESS_WAIT_SECONDS
            while store.read().serial < 20 * round_:  # let it write for a while, then kill it
                assert process.poll() is None, "the writer died on its own"
                assert time.monotonic() < deadline, "the writer made no progress"
        finally:
            _stop(process)

        snapshot = store.read()
        # Every resource took two writes (its checkpoint, then the record that cleared it),
        # so the serial says exactly how much was written, whatever instant the kill hit.
        pending = set(snapshot.checkpoints)
        assert len(pending) <= 1 and not pending & set(snapshot.resources)
        assert snapshot.serial == 2 * len(snapshot.resources) + len(pending)
        assert set(snapshot.resources) == {f"backup.r{i}" for i in range(len(snapshot.resources))}

    serial = store.read().serial
    assert store.put_resource(record("backup.after")) == serial + 1, "still writable"
    store.close()


def test_secrets_never_reach_the_stored_bytes(case: StoreCase) -> None:
    secret = "pa55-" + uuid.uuid4().hex
    register_secret(secret)
    store = case.open()
    store.put_resource(
        record(
            "migration.to-prod",
            spec={"to": f"postgresql://loader:{secret}@db/flights", "password": secret},
            fingerprints={secret: "as a key"},
        )
    )
    store.save_checkpoint("backup.b", {"dsn": f'quoted "{secret}" and escaped \\ {secret}'})
    store.append_history(entry("backup.b", outcome="failed", message=f"login {secret} refused"))
    with store.lock("apply", user=secret):
        assert store.lock_holder() is not None
        assert secret.encode() not in case.raw_bytes()
    snapshot = store.read()
    store.close()

    assert secret.encode() not in case.raw_bytes()
    assert snapshot.resources["migration.to-prod"].spec["password"] == "***"
    assert "***" in snapshot.checkpoints["backup.b"]["dsn"]


def test_open_state_dispatches_on_the_location(tmp_path: Path) -> None:
    def path_of(location: str) -> Path:
        opened = open_state(location, tmp_path)
        assert isinstance(opened, SqliteStateStore)
        return opened.path

    assert path_of(".dsdb/state.db") == tmp_path / ".dsdb/state.db"
    assert path_of("sqlite:///team/state.db") == tmp_path / "team/state.db"
    assert path_of(f"sqlite:///{tmp_path}/abs.db") == tmp_path / "abs.db"
    assert path_of(str(tmp_path / "abs.db")) == tmp_path / "abs.db"
    for url in (
        "postgresql://user:hunter2@db/state",
        "postgres://user:hunter2@db/state",
        "postgresql+psycopg://user:hunter2@db/state",
    ):
        opened = open_state(url, tmp_path)  # connects to nothing yet
        assert isinstance(opened, PostgresStateStore)
        assert opened.location == "postgresql+psycopg://user:***@db/state"
        opened.close()
    with pytest.raises(StateError, match="needs a file"):
        open_state("sqlite://", tmp_path)
    with pytest.raises(StateError, match="unsupported") as error:
        open_state("mysql://user:hunter2@db/state", tmp_path)
    assert "hunter2" not in error.value.message


# -- SQLite only -------------------------------------------------------------------------------


def test_sqlite_creates_folders_on_first_write_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "state.db"
    store = SqliteStateStore(path)
    store.read()
    assert not (tmp_path / "deep").exists()
    store.put_resource(record())
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()


def test_sqlite_empty_file_is_damage_not_a_fresh_start(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.touch()
    store = SqliteStateStore(path)
    for operation in (store.read, store.lock_holder, lambda: store.put_resource(record())):
        with pytest.raises(StateError) as error:
            operation()
        assert error.value.message == (
            f"state file {path} is empty (0 bytes): dsdb never leaves one so, so it was "
            "truncated or damaged. Move it aside, then put back a copy saved by "
            "`dsdb state pull` with `dsdb state push COPY`, or start afresh (the next plan "
            "creates every resource again)"
        )
    store.close()
    assert path.read_bytes() == b""


def test_sqlite_file_without_tables_is_damage(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA user_version = 1")  # a valid database that holds nothing
    raw.close()
    store = SqliteStateStore(path)
    with pytest.raises(StateError, match=r"holds no state \(an SQLite file without tables\)"):
        store.read()
    store.close()


def test_sqlite_first_write_creates_the_whole_file_once(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    stores = [SqliteStateStore(path) for _ in range(4)]
    with ThreadPoolExecutor(len(stores)) as pool:
        serials = list(pool.map(lambda s: s.put_resource(record(f"backup.b{id(s)}")), stores))
    assert sorted(serials) == [1, 2, 3, 4]
    assert len(stores[0].read().resources) == 4
    for store in stores:
        store.close()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("state.db-")) == [
        "state.db"
    ]


def test_a_busy_switch_to_wal_waits_for_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    sqlite3.connect(path).close()
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM sqlite_master").fetchall()  # holds the file's shared lock
    writer = sqlite3.connect(path, timeout=0.05, isolation_level=None)
    assert switch_to_wal(writer) is False  # busy, not an error
    reader.execute("ROLLBACK")
    assert switch_to_wal(writer) is True
    assert writer.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    reader.close()
    writer.close()


def test_sqlite_full_disk_says_the_disk_is_full(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStateStore(path)
    store.put_resource(record())
    engine = store._file.engine()
    assert engine is not None
    with engine.connect() as conn:  # the store's one connection
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        # SQLite's own limit on the file's size fails a write as a full disk does: SQLITE_FULL.
        conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StateError) as error:
        store.put_resource(record("backup.big", spec={"blob": "x" * 100_000}))
    assert error.value.message.startswith(
        f"state {path}: the disk is full; free some space and run again (SQLite: "
    )
    store.close()
    assert set(SqliteStateStore(path).read().resources) == {"backup.nightly"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"this is not a database, just text\n" * 100, "is not a dsdb state file"),
        (b"SQLite format 3\x00" + b"\xff" * 4000, "is not a dsdb state file"),
    ],
)
def test_sqlite_garbage_file_is_refused(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(content)
    store = SqliteStateStore(path)
    for operation in (store.read, store.lock_holder, lambda: store.put_resource(record())):
        with pytest.raises(StateError, match=expected) as error:
            operation()
        assert str(path) in error.value.message
    store.close()
    assert path.read_bytes() == content


def test_sqlite_other_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "flights.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE flights (id INTEGER PRIMARY KEY)")
    raw.close()
    store = SqliteStateStore(path)
    with pytest.raises(StateError, match=r"flights\.db is not a dsdb state file"):
        store.read()
    with pytest.raises(StateError, match="not a dsdb state file"):
        store.put_resource(record())
    store.close()


@pytest.mark.parametrize(
    ("table", "stored", "what"),
    [
        ("resources", "not json", "backup.nightly is malformed"),
        ("resources", '{"address": "backup.nightly"}', "backup.nightly is malformed"),
        ("checkpoints", "[1, 2, 3]", "the checkpoint of backup.nightly is malformed"),
    ],
)
def test_sqlite_unreadable_record_is_refused_naming_it(
    tmp_path: Path, table: str, stored: str, what: str
) -> None:
    path = tmp_path / "state.db"
    store = SqliteStateStore(path)
    store.put_resource(record())
    store.save_checkpoint("backup.nightly", {"done": ["flights"]})
    column = "record" if table == "resources" else "data"
    with sqlite3.connect(path) as raw:
        raw.execute(f"UPDATE {table} SET {column} = ?", (stored,))
    raw.close()
    with pytest.raises(StateError, match=f"state {re.escape(str(path))}: {what}"):
        store.read()
    store.close()


def test_sqlite_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStateStore(path)
    store.put_resource(record())
    store.close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    raw.close()

    store = SqliteStateStore(path)
    with pytest.raises(StateError, match="newer dsdb") as error:
        store.read()
    assert str(path) in error.value.message and "99" in error.value.message
    with pytest.raises(StateError, match="newer dsdb"):
        store.put_resource(record("backup.b"))
    store.close()


# A state file as the first released dsdb wrote it, frozen here on purpose: the upgrade steps
# must keep turning exactly this into the current schema.
_V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE resources (address TEXT PRIMARY KEY, kind TEXT NOT NULL,
    status TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE checkpoints (address TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE lock (slot INTEGER PRIMARY KEY CHECK (slot = 1), id TEXT NOT NULL,
    user TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, since TEXT NOT NULL,
    operation TEXT NOT NULL);
"""


def test_sqlite_older_schema_is_read_as_is_and_upgraded_on_write(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    lineage = str(uuid.uuid4())
    old = record("backup.old")
    with sqlite3.connect(path) as raw:
        raw.executescript(_V1_SCHEMA)
        raw.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [
                ("format", "dsdb-state"),
                ("schema_version", "1"),
                ("lineage", lineage),
                ("serial", "3"),
            ],
        )
        raw.execute(
            "INSERT INTO resources VALUES (?, ?, ?, ?)",
            (old.address, old.kind, old.status, json.dumps(old.to_dict())),
        )
        raw.execute("INSERT INTO checkpoints VALUES ('backup.half', '{\"rows_done\": 9}')")
    raw.close()
    before = path.read_bytes()

    store = SqliteStateStore(path)
    snapshot = store.read()
    assert snapshot == StateSnapshot(
        lineage, 3, {"backup.old": old}, {"backup.half": {"rows_done": 9}}
    )
    assert store.history() == []
    store.close()
    assert path.read_bytes() == before, "reading must not upgrade (or touch) the file"

    store = SqliteStateStore(path)
    store.append_history(entry("backup.old"))
    assert store.put_resource(record("backup.new")) == 4
    assert [e.address for e in store.history()] == ["backup.old"]
    assert store.read().lineage == lineage
    store.close()
    with sqlite3.connect(path) as raw:
        version = raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    raw.close()
    assert version == (str(SCHEMA_VERSION),)


# Version 2 added the history log, whose user column version 3 renames to `user_name` (the
# name the PostgreSQL state always used, so both share one table definition).
_V2_HISTORY = """
CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, address TEXT NOT NULL,
    action TEXT NOT NULL, user TEXT NOT NULL, host TEXT NOT NULL,
    started_at TEXT NOT NULL, finished_at TEXT NOT NULL, outcome TEXT NOT NULL,
    rows INTEGER NOT NULL, bytes INTEGER NOT NULL, duration_s REAL NOT NULL,
    message TEXT NOT NULL);
CREATE INDEX history_by_address ON history (address, id);
"""


def test_sqlite_version_2_keeps_its_history_when_read_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    lineage = str(uuid.uuid4())
    old = record("backup.old")
    logged = entry("backup.old", rows=12, bytes=340, duration_s=1.5, message="done")
    with sqlite3.connect(path) as raw:
        raw.executescript(_V1_SCHEMA + _V2_HISTORY + "PRAGMA journal_mode = WAL;")
        raw.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [
                ("format", "dsdb-state"),
                ("schema_version", "2"),
                ("lineage", lineage),
                ("serial", "5"),
            ],
        )
        raw.execute(
            "INSERT INTO resources VALUES (?, ?, ?, ?)",
            (old.address, old.kind, old.status, json.dumps(old.to_dict())),
        )
        values = {k: v for k, v in logged.to_dict().items() if k != "id"}
        raw.execute(
            f"INSERT INTO history ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
            list(values.values()),
        )
    raw.close()
    before = path.read_bytes()

    store = SqliteStateStore(path)
    assert store.read() == StateSnapshot(lineage, 5, {"backup.old": old}, {})
    assert store.history() == [replace(logged, id=1)]
    store.close()
    assert path.read_bytes() == before, "reading must not upgrade (or touch) the file"

    store = SqliteStateStore(path)
    assert store.put_resource(record("backup.new")) == 6
    store.append_history(entry("backup.new"))
    assert [(e.address, e.user) for e in store.history()] == [
        ("backup.new", "analyst"),
        ("backup.old", "analyst"),
    ]
    assert store.history("backup.old") == [replace(logged, id=1)]
    store.close()
    with sqlite3.connect(path) as raw:
        version = raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        columns = [row[1] for row in raw.execute("PRAGMA table_info(history)")]
    raw.close()
    assert version == (str(SCHEMA_VERSION),)
    assert "user_name" in columns and "user" not in columns


def test_sqlite_lock_from_another_host_is_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStateStore(path)
    store.put_resource(record())
    with sqlite3.connect(path) as raw:
        # A pid that is dead on this machine: only the other host name keeps this lock alive.
        raw.execute(
            "INSERT INTO lock VALUES (1, 'remote-lock', 'ci', 'build-agent-7', 999999999,"
            " '2026-11-27T05:10:00Z', 'apply')"
        )
    raw.close()
    with (
        pytest.raises(LockError, match=r"ci@build-agent-7 .* dsdb force-unlock remote-lock"),
        store.lock("apply", user="analyst"),
    ):
        pass
    assert store.force_unlock("remote-lock").host == "build-agent-7"
    with store.lock("apply", user="analyst"):
        pass
    store.close()
