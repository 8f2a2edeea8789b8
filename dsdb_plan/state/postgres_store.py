"""Shared state in PostgreSQL, for teams: `settings.state: postgresql://user:${env:PW}@host/db`.

Layout: every table lives in its own schema, `dsdb_state`, so that reflecting, backing up or
migrating the database's ordinary schema never meets dsdb's bookkeeping. A DBA may create the
schema beforehand and grant it to the dsdb role; otherwise the first write creates it. Nothing
is created by reads, so a plan against a fresh database writes nothing.

Writes: each is one READ COMMITTED transaction that first locks the `serial` row of `meta`
(`SELECT ... FOR UPDATE`), so concurrent writers queue up and every write sees the one before
it; the serial is bumped in that same transaction. Reads run in one REPEATABLE READ snapshot.

Locking: a session-level advisory lock (`pg_try_advisory_lock`) on a key derived from the
schema name, held by a dedicated connection for the lock's lifetime, plus the `lock` row that
names the holder (and the backend pid of that connection). PostgreSQL releases the advisory
lock when the holder's session ends, so a crashed apply frees the lock by itself; the row is
only believed while its backend still holds the advisory lock (`pg_locks`), and the next
holder overwrites it. `force_unlock` ends the holder's session with `pg_terminate_backend`
(which needs the same role as the holder, or `pg_signal_backend`).

The schema is versioned in `meta` and upgraded step by step on the first write by a newer
dsdb; a read of an older schema upgrades inside its transaction and rolls back, so a plan
never changes the database.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from dsdb_plan.errors import LockError, StateError, driver_message
from dsdb_plan.redact import redact, register_secret
from dsdb_plan.state.records import (
    HistoryEntry,
    LockInfo,
    ResourceRecord,
    StateSnapshot,
    move_entry,
)
from dsdb_plan.state.store import (
    acting,
    died_on_this_host,
    dump_json,
    held_by_this_process,
    load_stored,
    lock_message,
    new_lock,
    serialized_snapshot,
    utc_now,
    wait_for_lock,
)

_log = logging.getLogger(__name__)

SCHEMA = "dsdb_state"
_FORMAT = "dsdb-state"
_CONNECT_TIMEOUT_SECONDS = 10  # an unreachable server is an error, not a hang
_ROW_LOCK_TIMEOUT = "30s"  # how long a write waits for another process's write
_DYING_SESSION_SECONDS = 5.0  # how long a killed local holder's backend may take to exit
_POLL_SECONDS = 0.05


def _advisory_key(name: str) -> int:
    """A stable, positive 63-bit advisory lock key for `name`."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


# The key is derived from the schema name so it is the same for every dsdb, on every machine.
_LOCK_KEY = _advisory_key(f"dsdb:{SCHEMA}:lock")
# Serializes creating and upgrading the schema, which two first writers could otherwise race.
_DDL_KEY = _advisory_key(f"dsdb:{SCHEMA}:ddl")

# Step N brings the schema from version N to N+1. Released steps are never edited: a change to
# the schema is a new step appended here, so every older state upgrades the same way. Records
# are stored as the exact JSON text `dump_json` made (readable with `record::jsonb`), so "did
# this write change anything" is a plain text comparison, as in the SQLite store.
_UPGRADES: tuple[tuple[str, ...], ...] = (
    # version 1: the state, its lock and the history log
    (
        f"CREATE TABLE {SCHEMA}.meta (key text PRIMARY KEY, value text NOT NULL)",
        f"CREATE TABLE {SCHEMA}.resources (address text PRIMARY KEY, kind text NOT NULL,"
        " status text NOT NULL, record text NOT NULL)",
        f"CREATE TABLE {SCHEMA}.checkpoints (address text PRIMARY KEY, data text NOT NULL)",
        # One row at most; it names the holder and is trusted only while `backend_pid` still
        # holds the advisory lock.
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
    ),
)
SCHEMA_VERSION = len(_UPGRADES)

# HistoryEntry field -> column ("user" is reserved in PostgreSQL).
_HISTORY_COLUMNS = {
    "id": "id",
    "address": "address",
    "action": "action",
    "user": "user_name",
    "host": "host",
    "started_at": "started_at",
    "finished_at": "finished_at",
    "outcome": "outcome",
    "rows": "rows",
    "bytes": "bytes",
    "duration_s": "duration_s",
    "message": "message",
}

# The lock row, with whether its backend still holds the advisory lock.
_LOCK_ROW = sa.text(
    "SELECT l.lock_id, l.user_name, l.host, l.pid, l.since, l.operation, l.backend_pid,"
    " EXISTS (SELECT 1 FROM pg_locks p WHERE p.locktype = 'advisory' AND p.granted"
    "  AND p.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    "  AND p.classid::bigint = :hi AND p.objid::bigint = :lo AND p.objsubid = 1"
    "  AND p.pid = l.backend_pid)"
    f" FROM {SCHEMA}.lock l"
).bindparams(hi=_LOCK_KEY >> 32, lo=_LOCK_KEY & 0xFFFFFFFF)


def postgres_url(url: str) -> URL:
    """`url` parsed and set to dsdb's driver, psycopg 3; `StateError` (URL hidden) if bad."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # The parser's message may quote the whole URL, password included.
        raise StateError("the state URL is not a valid postgresql:// URL") from None
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise StateError(f"the state URL is not a PostgreSQL URL ({parsed.drivername}://...)")
    return parsed.set(drivername="postgresql+psycopg")


class PostgresStateStore:
    """A `StateStore` in a PostgreSQL database, shared by everyone who can reach it."""

    def __init__(self, url: str) -> None:
        parsed = postgres_url(url)
        password = parsed.password
        # A literal password in `settings.state` is as secret as an interpolated one.
        register_secret(password if isinstance(password, str) else None)
        self.location = parsed.render_as_string(hide_password=True)
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = _CONNECT_TIMEOUT_SECONDS
        if "application_name" not in parsed.query:
            # Lets a DBA recognise dsdb's sessions (and its lock holder) in pg_stat_activity.
            connect_args["application_name"] = "dsdb state"
        # pool_pre_ping: a long apply may outlive a pooled connection the server dropped.
        self._engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
        # The lock connection must really disconnect when closed, never go back to a pool
        # still holding the advisory lock.
        self._lock_engine = sa.create_engine(
            parsed, poolclass=sa.pool.NullPool, connect_args=connect_args
        )

    def __repr__(self) -> str:
        return f"PostgresStateStore({self.location!r})"

    # -- reading ----------------------------------------------------------------------------

    def read(self) -> StateSnapshot:
        with self._reading() as conn:
            if conn is None:
                return StateSnapshot.empty()
            meta: dict[str, str] = {
                key: value
                for key, value in conn.execute(sa.text(f"SELECT key, value FROM {SCHEMA}.meta"))
            }
            resources = {
                address: load_stored(self.location, address, text, ResourceRecord.from_dict)
                for address, text in conn.execute(
                    sa.text(f"SELECT address, record FROM {SCHEMA}.resources ORDER BY address")
                )
            }
            checkpoints = {
                address: load_stored(self.location, f"the checkpoint of {address}", text, dict)
                for address, text in conn.execute(
                    sa.text(f"SELECT address, data FROM {SCHEMA}.checkpoints ORDER BY address")
                )
            }
            return StateSnapshot(
                lineage=meta["lineage"],
                serial=int(meta["serial"]),
                resources=resources,
                checkpoints=checkpoints,
            )

    def history(self, address: str | None = None, limit: int | None = None) -> list[HistoryEntry]:
        columns = ", ".join(_HISTORY_COLUMNS.values())
        query = f"SELECT {columns} FROM {SCHEMA}.history"
        params: dict[str, Any] = {}
        if address is not None:
            query += " WHERE address = :address"
            params["address"] = address
        query += " ORDER BY id DESC"  # identities grow with every append: newest first
        if limit is not None:
            query += " LIMIT :limit"
            params["limit"] = limit
        with self._reading() as conn:
            if conn is None:
                return []
            return [
                HistoryEntry.from_dict(dict(zip(_HISTORY_COLUMNS, row, strict=True)))
                for row in conn.execute(sa.text(query), params)
            ]

    def lock_holder(self) -> LockInfo | None:
        with self._reading() as conn:
            return None if conn is None else _live_holder(conn)

    # -- writing ----------------------------------------------------------------------------

    def put_resource(self, record: ResourceRecord, *, clear_checkpoint: bool = True) -> int:
        text = dump_json(record.to_dict(), record.address)
        with self._writing() as (conn, serial):
            stored = conn.scalar(
                sa.text(f"SELECT record FROM {SCHEMA}.resources WHERE address = :address"),
                {"address": record.address},
            )
            changed = stored != text
            if changed:
                conn.execute(
                    sa.text(
                        f"INSERT INTO {SCHEMA}.resources (address, kind, status, record)"
                        " VALUES (:address, :kind, :status, :record) ON CONFLICT (address)"
                        " DO UPDATE SET kind = excluded.kind, status = excluded.status,"
                        " record = excluded.record"
                    ),
                    {
                        "address": record.address,
                        "kind": record.kind,
                        "status": record.status,
                        "record": text,
                    },
                )
            if clear_checkpoint:
                changed = _delete(conn, "checkpoints", record.address) > 0 or changed
            return _bump_serial(conn, serial) if changed else serial

    def remove_resource(self, address: str) -> int:
        with self._writing() as (conn, serial):
            removed = _delete(conn, "resources", address) + _delete(conn, "checkpoints", address)
            if not removed:
                raise StateError(f"{address} is not in state {self.location}")
            return _bump_serial(conn, serial)

    def rename_resource(self, old: str, new: str) -> int:
        if old == new:
            raise StateError(f"cannot move {old} onto itself")
        with self._writing() as (conn, serial):
            if _holds(conn, new):
                raise StateError(f"cannot move {old} to {new}: {new} is already in state")
            if not _holds(conn, old):
                raise StateError(f"{old} is not in state {self.location}")
            stored = conn.scalar(
                sa.text(f"SELECT record FROM {SCHEMA}.resources WHERE address = :old"),
                {"old": old},
            )
            if stored is not None:
                moved = replace(
                    load_stored(self.location, old, stored, ResourceRecord.from_dict), address=new
                )
                conn.execute(
                    sa.text(
                        f"UPDATE {SCHEMA}.resources SET address = :new, record = :record"
                        " WHERE address = :old"
                    ),
                    {"new": new, "old": old, "record": dump_json(moved.to_dict(), new)},
                )
            conn.execute(
                sa.text(f"UPDATE {SCHEMA}.checkpoints SET address = :new WHERE address = :old"),
                {"new": new, "old": old},
            )
            # In the same write, so `dsdb history NEW` can follow the rename.
            _insert_history(conn, move_entry(old, new, **acting(_live_holder(conn))))
            return _bump_serial(conn, serial)

    def save_checkpoint(self, address: str, data: dict[str, Any]) -> int:
        text = dump_json(data, f"the checkpoint of {address}")
        with self._writing() as (conn, serial):
            stored = conn.scalar(
                sa.text(f"SELECT data FROM {SCHEMA}.checkpoints WHERE address = :address"),
                {"address": address},
            )
            if stored == text:
                return serial
            conn.execute(
                sa.text(
                    f"INSERT INTO {SCHEMA}.checkpoints (address, data) VALUES (:address, :data)"
                    " ON CONFLICT (address) DO UPDATE SET data = excluded.data"
                ),
                {"address": address, "data": text},
            )
            return _bump_serial(conn, serial)

    def clear_checkpoint(self, address: str) -> int:
        with self._writing() as (conn, serial):
            cleared = _delete(conn, "checkpoints", address)
            return _bump_serial(conn, serial) if cleared else serial

    def append_history(self, entry: HistoryEntry) -> None:
        # No lock check and no serial: history is a log, and a failed run's entry is worth
        # keeping.
        with self._writing(check_lock=False) as (conn, _):
            _insert_history(conn, entry)

    def replace_all(self, snapshot: StateSnapshot) -> int:
        resources, checkpoints = serialized_snapshot(snapshot)
        with self._writing() as (conn, serial):
            current_resources = [
                tuple(row)
                for row in conn.execute(
                    sa.text(
                        f"SELECT address, kind, status, record FROM {SCHEMA}.resources"
                        ' ORDER BY address COLLATE "C"'
                    )
                )
            ]
            current_checkpoints = [
                tuple(row)
                for row in conn.execute(
                    sa.text(
                        f"SELECT address, data FROM {SCHEMA}.checkpoints"
                        ' ORDER BY address COLLATE "C"'
                    )
                )
            ]
            if current_resources == resources and current_checkpoints == checkpoints:
                return serial
            if serial == 0 and snapshot.lineage:
                # A state never written has no identity of its own yet: pushing into it is
                # its creation, so it takes the pushed lineage.
                conn.execute(
                    sa.text(f"UPDATE {SCHEMA}.meta SET value = :lineage WHERE key = 'lineage'"),
                    {"lineage": snapshot.lineage},
                )
            conn.execute(sa.text(f"DELETE FROM {SCHEMA}.resources"))
            conn.execute(sa.text(f"DELETE FROM {SCHEMA}.checkpoints"))
            if resources:
                conn.execute(
                    sa.text(
                        f"INSERT INTO {SCHEMA}.resources (address, kind, status, record)"
                        " VALUES (:address, :kind, :status, :record)"
                    ),
                    [
                        {"address": a, "kind": k, "status": s, "record": r}
                        for a, k, s, r in resources
                    ],
                )
            if checkpoints:
                conn.execute(
                    sa.text(
                        f"INSERT INTO {SCHEMA}.checkpoints (address, data) VALUES (:address, :data)"
                    ),
                    [{"address": a, "data": d} for a, d in checkpoints],
                )
            return _bump_serial(conn, serial)

    # -- locking ----------------------------------------------------------------------------

    @contextmanager
    def lock(self, operation: str, user: str, timeout: float = 0) -> Iterator[LockInfo]:
        info = new_lock(operation, user)
        held: sa.Connection | None = None

        def attempt() -> LockInfo | None:
            nonlocal info, held
            info = replace(info, since=utc_now())
            held, holder = self._try_lock(info)
            return holder

        wait_for_lock(attempt, self.location, timeout)
        assert held is not None  # wait_for_lock returns only once attempt took the lock
        try:
            yield info
        finally:
            self._release(held, info)

    def force_unlock(self, lock_id: str) -> LockInfo:
        with self._errors(), self._engine.connect() as conn, conn.begin():
            if _schema_version(conn) == 0:  # nothing to unlock, and nothing to create
                raise LockError(f"state {self.location} is not locked")
            row = _lock_row(conn)
            if row is None or (not row[1] and row[0].id != lock_id):
                raise LockError(f"state {self.location} is not locked")
            holder, alive, backend_pid = row
            if holder.id != lock_id:
                raise LockError(
                    f"lock id {lock_id} does not match the current lock: "
                    f"state {self.location} is {holder.describe()}"
                )
            if alive:
                # Ending the holder's session is what releases an advisory lock; a holder
                # that is still running finds its lock gone and its writes refused once
                # someone else takes it.
                if not conn.scalar(
                    sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_pid}
                ):
                    raise LockError(
                        f"could not end the session holding the lock on state {self.location}"
                        f" (PostgreSQL backend {backend_pid})"
                    )
                self._await_release(conn, backend_pid)
            conn.execute(sa.text(f"DELETE FROM {SCHEMA}.lock WHERE lock_id = :id"), {"id": lock_id})
            return holder

    def close(self) -> None:
        self._engine.dispose()
        self._lock_engine.dispose()

    # -- internals --------------------------------------------------------------------------

    def _try_lock(self, info: LockInfo) -> tuple[sa.Connection | None, LockInfo | None]:
        """Take the lock on a new connection, kept open; or return the holder keeping us out."""
        deadline = time.monotonic() + _DYING_SESSION_SECONDS
        while True:
            with self._errors():
                conn = self._lock_engine.connect()
                try:
                    holder = self._take(conn, info)
                except BaseException:
                    conn.close()  # a session that ends releases whatever it took
                    raise
            if holder is None:
                return conn, None
            conn.close()
            # A holder killed on this machine a moment ago: its session is about to end (the
            # server notices the closed socket), so wait for that rather than fail.
            if not died_on_this_host(holder) or time.monotonic() >= deadline:
                return None, holder
            time.sleep(_POLL_SECONDS)

    def _take(self, conn: sa.Connection, info: LockInfo) -> LockInfo | None:
        with conn.begin():
            # Locking the serial row orders this against every write and every other taker,
            # so a write never slips between our lock and our row.
            _prepare(conn)
            if conn.scalar(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": _LOCK_KEY}):
                conn.execute(
                    sa.text(
                        f"INSERT INTO {SCHEMA}.lock (slot, lock_id, user_name, host, pid, since,"
                        " operation, backend_pid) VALUES (1, :id, :user, :host, :pid, :since,"
                        " :operation, pg_backend_pid()) ON CONFLICT (slot) DO UPDATE SET"
                        " lock_id = excluded.lock_id, user_name = excluded.user_name,"
                        " host = excluded.host, pid = excluded.pid, since = excluded.since,"
                        " operation = excluded.operation, backend_pid = excluded.backend_pid"
                    ),
                    info.to_dict(),
                )
                return None
            return _live_holder(conn) or _unnamed_holder(conn)

    def _release(self, conn: sa.Connection, info: LockInfo) -> None:
        """Give the lock up; never raise, so a failing apply's own error is the one shown."""
        try:
            # Unlock first: until the row goes, it names a session that no longer holds the
            # lock, which every reader treats as free.
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
        except SQLAlchemyError:
            # force-unlock ended our session, or the server went away: either way the
            # advisory lock is gone with it.
            _log.warning("the state lock on %s was already released", self.location)
        finally:
            conn.close()
        try:
            with self._engine.begin() as clearing:
                # Only our own row: after a force-unlock the lock may belong to someone else.
                clearing.execute(
                    sa.text(f"DELETE FROM {SCHEMA}.lock WHERE lock_id = :id"), {"id": info.id}
                )
        except SQLAlchemyError as error:
            _log.warning(
                "could not clear the lock row on %s: %s",
                self.location,
                redact(driver_message(error)),
            )

    def _await_release(self, conn: sa.Connection, backend_pid: int) -> None:
        """Wait (bounded) until a terminated backend has let the advisory lock go."""
        deadline = time.monotonic() + _DYING_SESSION_SECONDS
        while time.monotonic() < deadline:
            row = _lock_row(conn)
            if row is None or not row[1] or row[2] != backend_pid:
                return
            time.sleep(_POLL_SECONDS)
        raise LockError(
            f"the session holding the lock on state {self.location} (PostgreSQL backend "
            f"{backend_pid}) was told to end but still holds the lock; try again"
        )

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as error:
            raise StateError(f"state {self.location}: {redact(driver_message(error))}") from None

    @contextmanager
    def _writing(self, *, check_lock: bool = True) -> Iterator[tuple[sa.Connection, int]]:
        """One write transaction at the current schema version, with the serial row locked.

        Yields the connection and the serial before the write.
        """
        with self._errors(), self._engine.connect() as conn, conn.begin():
            serial = _prepare(conn)
            if check_lock:
                holder = _live_holder(conn)
                # Any store of this process may write under its lock, as with SQLite.
                if holder is not None and not held_by_this_process(holder):
                    raise LockError(lock_message(self.location, holder))
            yield conn, serial

    @contextmanager
    def _reading(self) -> Iterator[sa.Connection | None]:
        """One consistent snapshot; None when the state was never written."""
        with (
            self._errors(),
            self._engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn,
        ):
            transaction = conn.begin()
            try:
                version = _schema_version(conn)
                if version == 0:
                    yield None
                    return
                if version < SCHEMA_VERSION:
                    # Upgraded inside this transaction, which is rolled back below: DDL is
                    # transactional here, so a plan sees the new schema and changes nothing.
                    _upgrade(conn, version)
                yield conn
            finally:
                transaction.rollback()


def _schema_version(conn: sa.Connection) -> int:
    """The state's schema version, 0 if never written; StateError for a schema not ours."""
    # One statement, so one snapshot: tables another session is creating appear all at once.
    tables = set(
        conn.scalars(
            sa.text("SELECT tablename FROM pg_tables WHERE schemaname = :schema"),
            {"schema": SCHEMA},
        )
    )
    if not tables:
        return 0
    if "meta" not in tables:
        raise StateError(
            f"schema {SCHEMA} holds tables that are not dsdb's state; dsdb keeps its state "
            "there and will not write into it"
        )
    query = f"SELECT key, value FROM {SCHEMA}.meta WHERE key IN ('format', 'schema_version')"
    meta: dict[str, str] = {key: value for key, value in conn.execute(sa.text(query))}
    if meta.get("format") != _FORMAT:
        raise StateError(f"schema {SCHEMA} is not a dsdb state (its meta table does not name it)")
    try:
        version = int(meta["schema_version"])
    except (KeyError, ValueError):
        raise StateError("the state's schema version is missing or unreadable") from None
    if version > SCHEMA_VERSION:
        raise StateError(
            f"the state was written by a newer dsdb (state schema version {version}; this "
            f"dsdb reads up to {SCHEMA_VERSION}); upgrade dsdb to use it"
        )
    return version


def _prepare(conn: sa.Connection) -> int:
    """Bring the schema to the current version and lock the serial row; return the serial."""
    # Bounded: a write stuck behind another session's transaction is reported, not endured.
    conn.execute(sa.text(f"SET LOCAL lock_timeout = '{_ROW_LOCK_TIMEOUT}'"))
    if _schema_version(conn) < SCHEMA_VERSION:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DDL_KEY})
        version = _schema_version(conn)  # again: another process may have just done it
        if version < SCHEMA_VERSION:
            _upgrade(conn, version)
    serial = conn.scalar(
        sa.text(f"SELECT value FROM {SCHEMA}.meta WHERE key = 'serial' FOR UPDATE")
    )
    return int(serial)


def _upgrade(conn: sa.Connection, version: int) -> None:
    """Apply the upgrade steps after `version`; 0 creates the state."""
    if version == 0 and not conn.scalar(
        sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": SCHEMA}
    ):
        # Only when missing: a schema a DBA created beforehand needs no CREATE on the database.
        conn.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
    for step in _UPGRADES[version:]:
        for statement in step:
            conn.execute(sa.text(statement))
    if version == 0:
        conn.execute(
            sa.text(f"INSERT INTO {SCHEMA}.meta (key, value) VALUES (:key, :value)"),
            [
                {"key": "format", "value": _FORMAT},
                {"key": "lineage", "value": str(uuid.uuid4())},
                {"key": "serial", "value": "0"},
            ],
        )
    conn.execute(
        sa.text(
            f"INSERT INTO {SCHEMA}.meta (key, value) VALUES ('schema_version', :version)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        ),
        {"version": str(SCHEMA_VERSION)},
    )


def _bump_serial(conn: sa.Connection, serial: int) -> int:
    conn.execute(
        sa.text(f"UPDATE {SCHEMA}.meta SET value = :serial WHERE key = 'serial'"),
        {"serial": str(serial + 1)},
    )
    return serial + 1


def _delete(conn: sa.Connection, table: str, address: str) -> int:
    result = conn.execute(
        sa.text(f"DELETE FROM {SCHEMA}.{table} WHERE address = :address"), {"address": address}
    )
    return result.rowcount


def _holds(conn: sa.Connection, address: str) -> bool:
    """Whether the state records `address`: a resource, or a checkpoint of unfinished work."""
    return any(
        conn.scalar(
            sa.text(f"SELECT 1 FROM {SCHEMA}.{table} WHERE address = :address"),
            {"address": address},
        )
        for table in ("resources", "checkpoints")
    )


def _lock_row(conn: sa.Connection) -> tuple[LockInfo, bool, int] | None:
    """The lock row: its holder, whether that session still holds the lock, its backend."""
    row = conn.execute(_LOCK_ROW).one_or_none()
    if row is None:
        return None
    lock_id, user, host, pid, since, operation, backend_pid, alive = row
    holder = LockInfo(id=lock_id, user=user, host=host, pid=pid, since=since, operation=operation)
    return holder, bool(alive), int(backend_pid)


def _insert_history(conn: sa.Connection, entry: HistoryEntry) -> None:
    values = {
        _HISTORY_COLUMNS[name]: redact(value) if isinstance(value, str) else value
        for name, value in entry.to_dict().items()
        if name != "id"  # the store numbers entries
    }
    columns = ", ".join(values)
    placeholders = ", ".join(f":{column}" for column in values)
    conn.execute(
        sa.text(f"INSERT INTO {SCHEMA}.history ({columns}) VALUES ({placeholders})"), values
    )


def _live_holder(conn: sa.Connection) -> LockInfo | None:
    """The holder named by the lock row, if its session still holds the advisory lock."""
    row = _lock_row(conn)
    return row[0] if row is not None and row[1] else None


def _unnamed_holder(conn: sa.Connection) -> LockInfo:
    """Someone holds the advisory lock without a row naming them: describe their session.

    Only a session outside dsdb using the same key gets here, since dsdb takes the lock and
    writes its row in one transaction.
    """
    session = conn.execute(
        sa.text(
            "SELECT a.usename, coalesce(host(a.client_addr), 'local socket'), a.pid,"
            " to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            " FROM pg_locks p JOIN pg_stat_activity a ON a.pid = p.pid"
            " WHERE p.locktype = 'advisory' AND p.granted AND p.classid::bigint = :hi"
            " AND p.objid::bigint = :lo AND p.objsubid = 1"
            " AND p.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        {"hi": _LOCK_KEY >> 32, "lo": _LOCK_KEY & 0xFFFFFFFF},
    ).first()
    user, host, backend_pid, since = session or ("?", "?", 0, "?")
    return LockInfo(
        id="unknown",
        user=str(user),
        host=str(host),
        pid=int(backend_pid),
        since=str(since),
        operation="a session that is not a dsdb run (PostgreSQL backend pid shown)",
    )
