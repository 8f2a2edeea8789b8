"""What only the shared PostgreSQL state has: PostgreSQL's own locks, sessions and schema.

The behaviour every store shares runs in tests/test_state.py against PostgreSQL too; here are
the team workflow end to end through the CLI (two applies, a killed holder, force-unlock), the
password that must never show, and the schema that a read never creates.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dsdb_plan.errors import LockError, StateError
from dsdb_plan.state import PostgresStateStore, StateSnapshot, open_state
from dsdb_plan.state.postgres_backend import SCHEMA
from dsdb_plan.state.tables import SCHEMA_VERSION
from tests.helpers import make_flights_db, run_cli
from tests.servers import ServerDatabase
from tests.test_state import (
    PROCESS_WAIT_SECONDS,
    StoreCase,
    drop_state_schema,
    entry,
    lock_held_elsewhere,
    record,
    state_rows,
)

pytestmark = pytest.mark.postgres

WriteManifest = Callable[[str], Path]  # the `write_manifest` fixture

MANIFEST = """\
version: 1
settings:
  state: ${env:DSDB_TEST_STATE_URL}
connections:
  local: {driver: sqlite, database: data/local.db}
backups:
  nightly: {connection: local, keep: 2}
"""


@pytest.fixture
def password() -> str:
    """A password the server ignores (trust authentication) but dsdb must hide."""
    return "pw-" + uuid.uuid4().hex


@pytest.fixture
def state_db(postgres_db: ServerDatabase) -> ServerDatabase:
    drop_state_schema(postgres_db)
    return postgres_db


@pytest.fixture
def state_url(state_db: ServerDatabase, password: str) -> str:
    return state_db.url.set(password=password).render_as_string(hide_password=False)


@pytest.fixture
def case(state_db: ServerDatabase, state_url: str, tmp_path: Path) -> StoreCase:
    return StoreCase(
        state_url, tmp_path, lambda: schema_exists(state_db), lambda: state_rows(state_db)
    )


@pytest.fixture
def project(
    tmp_path: Path, state_url: str, write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A manifest whose state is the PostgreSQL URL, given through ${env:...} as users do."""
    monkeypatch.setenv("DSDB_TEST_STATE_URL", state_url)
    make_flights_db(tmp_path / "data/local.db")
    return write_manifest(MANIFEST)


@pytest.fixture
def store(state_url: str) -> Iterator[PostgresStateStore]:
    opened = PostgresStateStore(state_url)
    yield opened
    opened.close()


def schema_exists(database: ServerDatabase) -> bool:
    return bool(scalar(database, "SELECT 1 FROM pg_namespace WHERE nspname = :s", s=SCHEMA))


def scalar(database: ServerDatabase, query: str, **params: object) -> object:
    engine = database.engine()
    try:
        with engine.begin() as conn:
            return conn.scalar(sa.text(query), params)
    finally:
        engine.dispose()


def execute(database: ServerDatabase, *statements: str) -> None:
    engine = database.engine()
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def lock_id_from(message: str) -> str:
    found = re.search(r"dsdb force-unlock (\S+)", message)
    assert found is not None, message
    return found.group(1)


# -- the team workflow, through the CLI --------------------------------------------------------


def test_a_second_apply_fails_fast_naming_the_holder_until_the_holder_is_killed(
    capsys: pytest.CaptureFixture[str], project: Path, case: StoreCase, password: str
) -> None:
    with lock_held_elsewhere(case) as (holder, held):
        refused = run_cli(capsys, "apply", project, "--auto-approve")
        assert refused.code == 1, refused.text
        assert f"analyst@{socket.gethostname()} (pid {holder.pid})" in refused.err
        assert f"dsdb force-unlock {held.id}" in refused.err
        assert password not in refused.text

        holder.kill()  # SIGKILL: no chance to clean up; its session ends with it
        holder.wait(PROCESS_WAIT_SECONDS)
        applied = run_cli(capsys, "apply", project, "--auto-approve")
        assert applied.code == 0, applied.text

    store = case.open()
    assert set(store.read().resources) == {"backup.nightly"}
    assert [e.address for e in store.history()] == ["backup.nightly"]
    assert store.lock_holder() is None
    store.close()
    again = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert again.code == 0, again.text


def test_force_unlock_ends_the_holders_session(
    capsys: pytest.CaptureFixture[str], project: Path, case: StoreCase, state_db: ServerDatabase
) -> None:
    with lock_held_elsewhere(case) as (holder, _):
        backend = scalar(state_db, f"SELECT backend_pid FROM {SCHEMA}.lock")
        refused = run_cli(capsys, "apply", project, "--auto-approve")
        assert refused.code == 1, refused.text

        unlocked = run_cli(capsys, "force-unlock", lock_id_from(refused.err), project, "--force")
        assert unlocked.code == 0, unlocked.text
        assert f"it was locked by analyst@{socket.gethostname()}" in unlocked.out
        gone = "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"
        assert scalar(state_db, gone, pid=backend) == 0, "the holder's lock session ended"
        assert holder.poll() is None, "only its session ended, not the process"

        applied = run_cli(capsys, "apply", project, "--auto-approve")
        assert applied.code == 0, applied.text
        # The old holder lets go of a lock it no longer has without an error.
        assert holder.stdin is not None
        holder.stdin.write("release\n")
        holder.stdin.flush()
        assert holder.wait(PROCESS_WAIT_SECONDS) == 0


def test_a_plan_against_an_empty_database_creates_nothing(
    capsys: pytest.CaptureFixture[str], project: Path, state_db: ServerDatabase
) -> None:
    result = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert result.code == 2, result.text
    assert "+ backup.nightly (create)" in result.out
    assert not schema_exists(state_db)
    ours = "SELECT count(*) FROM pg_tables WHERE schemaname NOT LIKE 'pg\\_%'"
    assert scalar(state_db, ours + " AND schemaname <> 'information_schema'") == 0
    for reading in (("history", "-m", project), ("state", "list", project)):
        result = run_cli(capsys, *reading)
        assert result.code == 0, result.text
    assert not schema_exists(state_db)


# -- PostgreSQL's own means --------------------------------------------------------------------


def test_the_lock_is_an_advisory_lock_of_the_session_the_row_names(
    store: PostgresStateStore, state_db: ServerDatabase
) -> None:
    holders = (
        "SELECT a.pid FROM pg_locks p JOIN pg_stat_activity a ON a.pid = p.pid"
        " WHERE p.locktype = 'advisory' AND p.granted AND a.datname = current_database()"
    )
    assert scalar(state_db, holders) is None
    with store.lock("apply", user="analyst") as info:
        backend = scalar(state_db, holders)
        assert backend == scalar(state_db, f"SELECT backend_pid FROM {SCHEMA}.lock")
        name = "SELECT application_name FROM pg_stat_activity WHERE pid = :pid"
        assert scalar(state_db, name, pid=backend) == "dsdb state"
        assert store.lock_holder() == info
    assert scalar(state_db, holders) is None
    assert scalar(state_db, f"SELECT count(*) FROM {SCHEMA}.lock") == 0


def test_a_row_whose_session_is_gone_names_no_holder(
    store: PostgresStateStore, state_db: ServerDatabase
) -> None:
    store.put_resource(record())
    # What a crashed holder leaves: its row, but no session holding the advisory lock.
    execute(
        state_db,
        f"INSERT INTO {SCHEMA}.lock VALUES (1, 'dead-lock', 'ci', 'build-agent-7', 42,"
        " '2026-11-27T05:10:00Z', 'apply', 999999)",
    )
    assert store.lock_holder() is None
    assert store.put_resource(record("backup.b")) == 2, "a dead holder blocks no write"
    with store.lock("apply", user="analyst") as mine:
        assert store.lock_holder() == mine
    with pytest.raises(LockError, match="not locked"):
        store.force_unlock("dead-lock")


def test_first_writes_racing_from_many_sessions_create_the_schema_once(
    state_url: str, state_db: ServerDatabase
) -> None:
    writers = 6
    barrier = threading.Barrier(writers)
    serials: list[int] = []
    errors: list[BaseException] = []

    def write(index: int) -> None:
        store = PostgresStateStore(state_url)
        try:
            barrier.wait(PROCESS_WAIT_SECONDS)
            serials.append(store.put_resource(record(f"backup.r{index}")))
        except BaseException as error:
            errors.append(error)
        finally:
            store.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PROCESS_WAIT_SECONDS)
    assert errors == []
    assert sorted(serials) == list(range(1, writers + 1)), "every write saw the one before"
    store = PostgresStateStore(state_url)
    assert len(store.read().resources) == writers
    store.close()


def test_a_schema_created_beforehand_by_a_dba_is_used(
    store: PostgresStateStore, state_db: ServerDatabase
) -> None:
    execute(state_db, f"CREATE SCHEMA {SCHEMA}")
    assert store.read() == StateSnapshot.empty()
    assert store.put_resource(record()) == 1


def test_foreign_tables_in_the_schema_are_refused(
    store: PostgresStateStore, state_db: ServerDatabase
) -> None:
    execute(state_db, f"CREATE SCHEMA {SCHEMA}", f"CREATE TABLE {SCHEMA}.resources (x int)")
    for operation in (store.read, lambda: store.put_resource(record())):
        with pytest.raises(StateError, match="not dsdb's state"):
            operation()
    assert scalar(state_db, f"SELECT count(*) FROM {SCHEMA}.resources") == 0


def test_a_newer_schema_is_refused(store: PostgresStateStore, state_db: ServerDatabase) -> None:
    store.put_resource(record())
    execute(state_db, f"UPDATE {SCHEMA}.meta SET value = '99' WHERE key = 'schema_version'")
    for operation in (store.read, lambda: store.put_resource(record("backup.b"))):
        with pytest.raises(StateError, match=r"newer dsdb \(state schema version 99"):
            operation()


# The schema as the first release of the shared store wrote it (version 1), frozen here on
# purpose: it must keep opening, and upgrade in place on the first write.
_V1_SCHEMA = (
    f"CREATE SCHEMA {SCHEMA}",
    f"CREATE TABLE {SCHEMA}.meta (key text PRIMARY KEY, value text NOT NULL)",
    f"CREATE TABLE {SCHEMA}.resources (address text PRIMARY KEY, kind text NOT NULL,"
    " status text NOT NULL, record text NOT NULL)",
    f"CREATE TABLE {SCHEMA}.checkpoints (address text PRIMARY KEY, data text NOT NULL)",
    f"CREATE TABLE {SCHEMA}.lock (slot integer PRIMARY KEY CHECK (slot = 1),"
    " lock_id text NOT NULL, user_name text NOT NULL, host text NOT NULL,"
    " pid integer NOT NULL, since text NOT NULL, operation text NOT NULL,"
    " backend_pid integer NOT NULL)",
    f"CREATE TABLE {SCHEMA}.history (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " address text NOT NULL, action text NOT NULL, user_name text NOT NULL,"
    " host text NOT NULL, started_at text NOT NULL, finished_at text NOT NULL,"
    " outcome text NOT NULL, rows bigint NOT NULL, bytes bigint NOT NULL,"
    " duration_s double precision NOT NULL, message text NOT NULL)",
    f"CREATE INDEX history_by_address ON {SCHEMA}.history (address, id)",
)


def test_a_version_1_schema_is_read_as_is_and_upgraded_on_write(
    store: PostgresStateStore, state_db: ServerDatabase
) -> None:
    lineage = str(uuid.uuid4())
    old = record("backup.old")
    execute(
        state_db,
        *_V1_SCHEMA,
        f"INSERT INTO {SCHEMA}.meta VALUES ('format', 'dsdb-state'), ('schema_version', '1'),"
        f" ('lineage', '{lineage}'), ('serial', '4')",
        f"INSERT INTO {SCHEMA}.resources VALUES ('backup.old', 'backup', 'applied',"
        f" '{json.dumps(old.to_dict())}')",
        f"INSERT INTO {SCHEMA}.history (address, action, user_name, host, started_at,"
        " finished_at, outcome, rows, bytes, duration_s, message) VALUES ('backup.old',"
        " 'create', 'analyst', 'laptop', '2026-11-27T05:10:00Z', '2026-11-27T05:10:03Z', 'ok',"
        " 7, 0, 0.5, '')",
    )
    version = f"SELECT value FROM {SCHEMA}.meta WHERE key = 'schema_version'"

    assert store.read() == StateSnapshot(lineage, 4, {"backup.old": old}, {})
    assert [(e.address, e.user, e.rows) for e in store.history()] == [("backup.old", "analyst", 7)]
    assert scalar(state_db, version) == "1", "reading must not upgrade the schema"

    with store.lock("apply", user="analyst") as held:
        assert store.lock_holder() == held
        assert store.put_resource(record("backup.new")) == 5
    store.append_history(entry("backup.new"))
    assert [e.address for e in store.history()] == ["backup.new", "backup.old"]
    assert scalar(state_db, version) == str(SCHEMA_VERSION)


# -- the password ------------------------------------------------------------------------------


def test_the_password_is_never_shown_nor_stored(
    store: PostgresStateStore, state_db: ServerDatabase, case: StoreCase, password: str
) -> None:
    assert password not in store.location and password not in repr(store)
    assert store.location == case.location.replace(password, "***")
    messages: list[str] = []
    store.put_resource(record(spec={"state": case.location}))
    store.save_checkpoint("backup.b", {"dsn": case.location})
    store.append_history(entry("backup.a", message=f"connected to {case.location}"))
    with pytest.raises(StateError) as missing:
        store.remove_resource("backup.none")
    messages.append(missing.value.message)
    with lock_held_elsewhere(case) as (_, held):
        with pytest.raises(LockError) as locked, store.lock("apply", user="ci"):
            pass
        messages.append(locked.value.message)
        with pytest.raises(LockError) as wrong:
            store.force_unlock("not-" + held.id)
        messages.append(wrong.value.message)
    assert all(store.location in message for message in messages)
    assert not [message for message in messages if password in message]
    assert password.encode() not in state_rows(state_db)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://loader:{pw}@127.0.0.1:1/state",  # nothing listens on port 1
        "postgresql://loader:{pw}@127.0.0.1:notaport/state",
        "postgresql://loader@127.0.0.1:1/state?password={pw}",  # libpq takes it there too
    ],
)
def test_unusable_urls_fail_with_one_message_without_the_password(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest: WriteManifest,
    monkeypatch: pytest.MonkeyPatch,
    password: str,
    url: str,
) -> None:
    with pytest.raises(StateError) as error:
        open_state(url.format(pw=password), tmp_path).read()
    assert password not in error.value.message

    monkeypatch.setenv("DSDB_TEST_STATE_URL", url.format(pw=password))
    result = run_cli(capsys, "plan", write_manifest(MANIFEST))
    assert result.code == 1
    assert "Traceback" not in result.text and password not in result.text
    assert len(result.err.strip().splitlines()) == 1, result.err
