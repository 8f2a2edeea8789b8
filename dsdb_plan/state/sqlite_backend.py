"""The default state: one SQLite file, `.dsdb/state.db` beside the manifest.

Every write is one `BEGIN IMMEDIATE` transaction in WAL mode with `synchronous=FULL`, so a
crash at any instant leaves the last committed state, readable. The file is built whole under
a temporary name and linked into place by the first write, so a state file never exists
without its tables: one that has none was truncated or is not ours.

The lock is a row of the file's `lock` table, naming its holder. A holder that died on this
machine (its pid is gone) no longer holds it: the next taker replaces the row, so a killed
apply is resumable without a manual unlock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from dsdb_plan.errors import LockError, StateError
from dsdb_plan.state.records import LockInfo
from dsdb_plan.state.sql_store import Prepare, SqlStateStore
from dsdb_plan.state.storage_errors import free_bytes, is_foreign_file, storage_message
from dsdb_plan.state.store import died_on_this_host
from dsdb_plan.state.tables import upgrade

_log = logging.getLogger(__name__)

_BUSY_TIMEOUT_SECONDS = 30.0  # how long one transaction waits for another process's write

# One row at most (slot = 1): the lock is the row, so taking it is an INSERT that a second
# process cannot win at the same time.
_LOCK = sa.Table(
    "lock",
    sa.MetaData(),
    sa.Column("slot", sa.Integer, sa.CheckConstraint("slot = 1"), primary_key=True),
    sa.Column("id", sa.Text, nullable=False),
    sa.Column("user", sa.Text, nullable=False),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("since", sa.Text, nullable=False),
    sa.Column("operation", sa.Text, nullable=False),
)


class SqliteStateStore(SqlStateStore):
    """A `StateStore` in one SQLite file; the file is created by the first write."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file = SqliteFile(self.path)
        super().__init__(self._file)


class SqliteFile:
    """The state file: its connection, its transactions and its lock row."""

    schema = None
    lock_table = _LOCK
    empty_is_new = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self._engine: sa.Engine | None = None
        self._wal_checked = False
        # One connection per store; the mutex lets an executor share the store across threads.
        self._mutex = threading.RLock()

    def named(self, what: str) -> str:
        return f"{self.path} {what}"

    def engine(self) -> sa.Engine | None:
        """The engine of the file's one connection, None while the file does not exist."""
        if self._engine is None and self.path.exists():
            self._engine = _file_engine(self.path, mode="rw")  # "rw" never creates the file
            self._wal_checked = False
        return self._engine

    @contextmanager
    def reading(self) -> Iterator[sa.Connection | None]:
        with self._mutex, self._errors():
            engine = self.engine()
            if engine is None:
                yield None
                return
            with engine.connect() as conn:
                conn.begin()  # one snapshot for all the queries of this read
                try:
                    yield conn
                finally:
                    conn.rollback()

    @contextmanager
    def writing(self, *, create: bool) -> Iterator[sa.Connection | None]:
        with self._mutex, self._errors():
            if create and not self.path.exists():
                _create(self.path)
            engine = self.engine()
            if engine is None:
                yield None
                return
            with engine.connect() as conn:
                with conn.execution_options(sqlite_begin="BEGIN IMMEDIATE").begin():
                    yield conn
                if not self._wal_checked:
                    # Outside a transaction (SQLite cannot switch journal modes inside one),
                    # and only once a write proved the file ours.
                    raw = conn.connection.driver_connection
                    assert isinstance(raw, sqlite3.Connection)
                    self._wal_checked = switch_to_wal(raw)

    def without_state(self, tables: set[str]) -> str:
        if tables:
            return (
                f"{self.path} is not a dsdb state file "
                "(it is an SQLite database without dsdb's tables)"
            )
        size = self.path.stat().st_size
        what = (
            "is empty (0 bytes)" if size == 0 else "holds no state (an SQLite file without tables)"
        )
        return (
            f"state file {self.path} {what}: dsdb never leaves one so, so it was truncated or "
            "damaged. Move it aside, then put back a copy saved by `dsdb state pull` with "
            "`dsdb state push COPY`, or start afresh (the next plan creates every resource again)"
        )

    def upgrading(self, conn: sa.Connection, version: int) -> None:
        """Nothing to do: `BEGIN IMMEDIATE` already keeps other writers out."""

    # -- the lock row -----------------------------------------------------------------------

    def holder(self, conn: sa.Connection) -> LockInfo | None:
        row = conn.execute(sa.select(*list(_LOCK.c)[1:])).first()  # all but the slot
        return None if row is None else LockInfo(**row._asdict())

    def blocking(self, conn: sa.Connection) -> LockInfo | None:
        holder = self.holder(conn)
        return None if holder is None or died_on_this_host(holder) else holder

    def acquire(self, info: LockInfo, prepare: Prepare) -> tuple[object, LockInfo | None]:
        with self.writing(create=True) as conn:
            assert conn is not None  # create=True always gives one
            prepare(conn)
            holder = self.holder(conn)
            if holder is not None:
                if not died_on_this_host(holder):
                    return None, holder
                # A killed apply must be resumable without a manual unlock.
                _log.warning("taking over the stale state lock: %s", holder.describe())
            conn.execute(_LOCK.delete())
            conn.execute(_LOCK.insert().values(slot=1, **info.to_dict()))
            return info.id, None

    def release(self, held: object, info: LockInfo) -> None:
        with self.writing(create=False) as conn:
            if conn is not None:
                # Only our own row: after a force-unlock the lock may belong to someone else.
                conn.execute(_LOCK.delete().where(_LOCK.c.id == info.id))

    def force_unlock(self, conn: sa.Connection, lock_id: str) -> LockInfo:
        holder = self.holder(conn)
        if holder is None:
            raise LockError(f"state {self.location} is not locked")
        if holder.id != lock_id:
            raise LockError(
                f"lock id {lock_id} does not match the current lock: "
                f"state {self.location} is {holder.describe()}"
            )
        conn.execute(_LOCK.delete().where(_LOCK.c.id == lock_id))
        return holder

    def close(self) -> None:
        with self._mutex:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (sa.exc.DBAPIError, sqlite3.Error, OSError) as raised:
            error = raised.orig if isinstance(raised, sa.exc.DBAPIError) else raised
            if isinstance(error, sqlite3.DatabaseError) and is_foreign_file(error):
                raise StateError(f"{self.path} is not a dsdb state file ({error})") from None
            assert isinstance(error, sqlite3.Error | OSError)
            raise StateError(storage_message(self.path, error, free_bytes(self.path))) from None


def switch_to_wal(conn: sqlite3.Connection) -> bool:
    """Put the file in WAL mode; False where another connection's transaction kept it from
    switching now (the write before it is done all the same: the next one switches)."""
    try:
        conn.execute("PRAGMA journal_mode = WAL")
    except sqlite3.OperationalError as error:
        # Switching needs the file to itself: a writer waiting for this connection's lock
        # makes SQLite answer busy at once, to break the deadlock.
        if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
            raise
        return False
    return True


def _file_engine(path: Path, *, mode: str) -> sa.Engine:
    """An engine on one shared connection to `path`, which begins its transactions with the
    `sqlite_begin` execution option ("BEGIN" by default)."""
    uri = f"{path.resolve().as_uri()}?mode={mode}"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(
            uri,
            uri=True,
            timeout=_BUSY_TIMEOUT_SECONDS,
            isolation_level=None,  # transactions are begun below, as SQLAlchemy asks
            check_same_thread=False,
        )
        # WAL alone may lose the last commits on power loss; FULL makes them durable.
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    engine = sa.create_engine("sqlite://", creator=connect, poolclass=sa.pool.StaticPool)

    @sa.event.listens_for(engine, "begin")
    def begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))

    return engine


def _create(path: Path) -> None:
    """Make a new, initialized state file at `path`, or leave the one another process just
    made. It is built under a temporary name and linked into place whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        engine = _file_engine(building, mode="rwc")
        try:
            with (
                engine.connect() as conn,
                conn.execution_options(sqlite_begin="BEGIN IMMEDIATE").begin(),
            ):
                upgrade(conn, 0, _LOCK, None)
        finally:
            engine.dispose()
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(building, path)
    finally:
        building.unlink(missing_ok=True)
