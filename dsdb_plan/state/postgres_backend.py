"""Shared state in PostgreSQL, for teams: `settings.state: postgresql://user:${env:PW}@host/db`.

Layout: every table lives in its own schema, `dsdb_state`, so that reflecting, backing up or
migrating the database's ordinary schema never meets dsdb's bookkeeping. A DBA may create the
schema beforehand and grant it to the dsdb role; otherwise the first write creates it. Writes
run READ COMMITTED (the serial row, locked first, orders them); reads run in one REPEATABLE
READ snapshot.

Locking: a session-level advisory lock (`pg_try_advisory_lock`) on a key derived from the
schema name, held by a dedicated connection for the lock's lifetime, plus the `lock` row that
names the holder (and the backend pid of that connection). PostgreSQL releases the advisory
lock when the holder's session ends, so a crashed apply frees the lock by itself; the row is
only believed while its backend still holds the advisory lock (`pg_locks`), and the next
holder overwrites it. `force_unlock` ends the holder's session with `pg_terminate_backend`
(which needs the same role as the holder, or `pg_signal_backend`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from dsdb_plan.connection import display_url, register_url_secrets
from dsdb_plan.errors import LockError, StateError, driver_message
from dsdb_plan.redact import redact
from dsdb_plan.state.records import LockInfo
from dsdb_plan.state.sql_store import Prepare, SqlStateStore
from dsdb_plan.state.store import died_on_this_host

_log = logging.getLogger(__name__)

SCHEMA = "dsdb_state"
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

# One row at most; it names the holder and is trusted only while `backend_pid` still holds
# the advisory lock.
_LOCK = sa.Table(
    "lock",
    sa.MetaData(),
    sa.Column("slot", sa.Integer, sa.CheckConstraint("slot = 1"), primary_key=True),
    sa.Column("lock_id", sa.Text, nullable=False, key="id"),
    sa.Column("user_name", sa.Text, nullable=False, key="user"),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("since", sa.Text, nullable=False),
    sa.Column("operation", sa.Text, nullable=False),
    sa.Column("backend_pid", sa.Integer, nullable=False),
)

# The advisory lock as pg_locks shows it.
_ADVISORY = (
    "p.locktype = 'advisory' AND p.granted"
    " AND p.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND p.classid::bigint = :hi AND p.objid::bigint = :lo AND p.objsubid = 1"
)
_KEY_PARTS = {"hi": _LOCK_KEY >> 32, "lo": _LOCK_KEY & 0xFFFFFFFF}

# The lock row, with whether its backend still holds the advisory lock.
_LOCK_ROW = sa.text(
    "SELECT l.lock_id, l.user_name, l.host, l.pid, l.since, l.operation, l.backend_pid,"
    f" EXISTS (SELECT 1 FROM pg_locks p WHERE {_ADVISORY} AND p.pid = l.backend_pid)"
    f" FROM {SCHEMA}.lock l"
).bindparams(**_KEY_PARTS)


def postgres_url(url: str | URL) -> URL:
    """`url` set to dsdb's driver, psycopg 3 (any driver spelling means the same to libpq)."""
    return sa.engine.make_url(url).set(drivername="postgresql+psycopg")


class PostgresStateStore(SqlStateStore):
    """A `StateStore` in a PostgreSQL database, shared by everyone who can reach it."""

    def __init__(self, url: str | URL) -> None:
        super().__init__(PostgresSchema(postgres_url(url)))


class PostgresSchema:
    """The `dsdb_state` schema of a database: its connections and its advisory lock."""

    schema = SCHEMA
    lock_table = _LOCK
    empty_is_new = True

    def __init__(self, url: URL) -> None:
        # A literal password in `settings.state` is as secret as an interpolated one.
        register_url_secrets(url)
        self.location = display_url(url)
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = _CONNECT_TIMEOUT_SECONDS
        if "application_name" not in url.query:
            # Lets a DBA recognise dsdb's sessions (and its lock holder) in pg_stat_activity.
            connect_args["application_name"] = "dsdb state"
        options: dict[str, Any] = {"schema_translate_map": {None: SCHEMA}}
        # pool_pre_ping: a long apply may outlive a pooled connection the server dropped.
        self._engine = sa.create_engine(
            url, pool_pre_ping=True, connect_args=connect_args, execution_options=options
        )
        # The lock connection must really disconnect when closed, never go back to a pool
        # still holding the advisory lock.
        self._lock_engine = sa.create_engine(
            url, poolclass=sa.pool.NullPool, connect_args=connect_args, execution_options=options
        )

    def named(self, what: str) -> str:
        return f"schema {SCHEMA} {what}"

    @contextmanager
    def reading(self) -> Iterator[sa.Connection | None]:
        with (
            self._errors(),
            self._engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn,
        ):
            conn.begin()
            try:
                yield conn
            finally:
                conn.rollback()

    @contextmanager
    def writing(self, *, create: bool) -> Iterator[sa.Connection | None]:
        with self._errors(), self._engine.connect() as conn, conn.begin():
            _bound_waits(conn)
            yield conn

    def without_state(self, tables: set[str]) -> str:
        return (
            f"schema {SCHEMA} holds tables that are not dsdb's state; dsdb keeps its state "
            "there and will not write into it"
        )

    def upgrading(self, conn: sa.Connection, version: int) -> None:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DDL_KEY})
        if not conn.scalar(
            sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": SCHEMA}
        ):
            # Only when missing: a schema a DBA created beforehand needs no CREATE on the
            # database.
            conn.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))

    # -- the advisory lock ------------------------------------------------------------------

    def holder(self, conn: sa.Connection) -> LockInfo | None:
        """The holder named by the lock row, if its session still holds the advisory lock."""
        row = _lock_row(conn)
        return row[0] if row is not None and row[1] else None

    blocking = holder

    def acquire(self, info: LockInfo, prepare: Prepare) -> tuple[object, LockInfo | None]:
        """Take the lock on a new connection, kept open; or return the holder keeping us out."""
        deadline = time.monotonic() + _DYING_SESSION_SECONDS
        while True:
            with self._errors():
                conn = self._lock_engine.connect()
                try:
                    holder = self._take(conn, info, prepare)
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

    def _take(self, conn: sa.Connection, info: LockInfo, prepare: Prepare) -> LockInfo | None:
        with conn.begin():
            _bound_waits(conn)
            # Locking the serial row orders this against every write and every other taker,
            # so a write never slips between our lock and our row.
            prepare(conn)
            if conn.scalar(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": _LOCK_KEY}):
                conn.execute(_LOCK.delete())
                conn.execute(
                    _LOCK.insert().values(
                        slot=1, backend_pid=sa.func.pg_backend_pid(), **info.to_dict()
                    )
                )
                return None
            return self.holder(conn) or _unnamed_holder(conn)

    def release(self, held: object, info: LockInfo) -> None:
        """Give the lock up; never raise, so a failing apply's own error is the one shown."""
        assert isinstance(held, sa.Connection)
        try:
            # Unlock first: until the row goes, it names a session that no longer holds the
            # lock, which every reader treats as free.
            held.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
        except sa.exc.SQLAlchemyError:
            # force-unlock ended our session, or the server went away: either way the
            # advisory lock is gone with it.
            _log.warning("the state lock on %s was already released", self.location)
        finally:
            held.close()
        try:
            with self._engine.begin() as clearing:
                # Only our own row: after a force-unlock the lock may belong to someone else.
                clearing.execute(_LOCK.delete().where(_LOCK.c.id == info.id))
        except sa.exc.SQLAlchemyError as error:
            _log.warning(
                "could not clear the lock row on %s: %s",
                self.location,
                redact(driver_message(error)),
            )

    def force_unlock(self, conn: sa.Connection, lock_id: str) -> LockInfo:
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
            # Ending the holder's session is what releases an advisory lock; a holder that
            # is still running finds its lock gone and its writes refused once someone else
            # takes it.
            if not conn.scalar(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_pid}):
                raise LockError(
                    f"could not end the session holding the lock on state {self.location}"
                    f" (PostgreSQL backend {backend_pid})"
                )
            self._await_release(conn, backend_pid)
        conn.execute(_LOCK.delete().where(_LOCK.c.id == lock_id))
        return holder

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

    def close(self) -> None:
        self._engine.dispose()
        self._lock_engine.dispose()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.SQLAlchemyError as error:
            raise StateError(f"state {self.location}: {redact(driver_message(error))}") from None


def _bound_waits(conn: sa.Connection) -> None:
    """A write stuck behind another session's transaction is reported, not endured."""
    conn.execute(sa.text(f"SET LOCAL lock_timeout = '{_ROW_LOCK_TIMEOUT}'"))


def _lock_row(conn: sa.Connection) -> tuple[LockInfo, bool, int] | None:
    """The lock row: its holder, whether that session still holds the lock, its backend."""
    row = conn.execute(_LOCK_ROW).one_or_none()
    if row is None:
        return None
    lock_id, user, host, pid, since, operation, backend_pid, alive = row
    holder = LockInfo(id=lock_id, user=user, host=host, pid=pid, since=since, operation=operation)
    return holder, bool(alive), int(backend_pid)


def _unnamed_holder(conn: sa.Connection) -> LockInfo:
    """Someone holds the advisory lock without a row naming them: describe their session.

    Only a session outside dsdb using the same key gets here, since dsdb takes the lock and
    writes its row in one transaction.
    """
    session = conn.execute(
        sa.text(
            "SELECT a.usename, coalesce(host(a.client_addr), 'local socket'), a.pid,"
            " to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            f" FROM pg_locks p JOIN pg_stat_activity a ON a.pid = p.pid WHERE {_ADVISORY}"
        ),
        _KEY_PARTS,
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
