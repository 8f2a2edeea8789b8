"""The default state store: one SQLite file, `.dsdb/state.db` beside the manifest.

Every write is one `BEGIN IMMEDIATE` transaction in WAL mode with `synchronous=FULL`, so a
crash at any instant leaves the last committed state, readable. The schema is versioned in the
`meta` table and upgraded step by step on the first write by a newer dsdb; reads of an older
file upgrade a copy in memory instead, so a plan never modifies the file.
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
from dataclasses import replace
from pathlib import Path
from typing import Any

from dsdb_plan.errors import LockError, StateError
from dsdb_plan.redact import redact
from dsdb_plan.state.records import (
    HistoryEntry,
    LockInfo,
    ResourceRecord,
    StateSnapshot,
    move_entry,
)
from dsdb_plan.state.storage_errors import free_bytes, is_foreign_file, storage_message
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

_FORMAT = "dsdb-state"
_BUSY_TIMEOUT_SECONDS = 30.0  # how long one transaction waits for another process's write

# Step N brings a file from schema version N to N+1. Released steps are never edited: a change
# to the schema is a new step appended here, so every older file upgrades the same way.
_UPGRADES: tuple[tuple[str, ...], ...] = (
    # version 1: the state proper and its lock
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE resources (address TEXT PRIMARY KEY, kind TEXT NOT NULL,"
        " status TEXT NOT NULL, record TEXT NOT NULL)",
        "CREATE TABLE checkpoints (address TEXT PRIMARY KEY, data TEXT NOT NULL)",
        # One row at most (slot = 1): the lock is the row, so taking it is an INSERT that a
        # second process cannot win at the same time.
        "CREATE TABLE lock (slot INTEGER PRIMARY KEY CHECK (slot = 1), id TEXT NOT NULL,"
        " user TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, since TEXT NOT NULL,"
        " operation TEXT NOT NULL)",
    ),
    # version 2: the history log
    (
        "CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, address TEXT NOT NULL,"
        " action TEXT NOT NULL, user TEXT NOT NULL, host TEXT NOT NULL,"
        " started_at TEXT NOT NULL, finished_at TEXT NOT NULL, outcome TEXT NOT NULL,"
        " rows INTEGER NOT NULL, bytes INTEGER NOT NULL, duration_s REAL NOT NULL,"
        " message TEXT NOT NULL)",
        "CREATE INDEX history_by_address ON history (address, id)",
    ),
)
SCHEMA_VERSION = len(_UPGRADES)

_HISTORY_COLUMNS = (
    "id, address, action, user, host, started_at, finished_at, outcome, rows, bytes,"
    " duration_s, message"
)


class SqliteStateStore:
    """A `StateStore` in one SQLite file; the file is created by the first write."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._conn: sqlite3.Connection | None = None
        self._wal_checked = False
        # One connection per store; the mutex lets an executor share the store across threads.
        self._mutex = threading.RLock()

    def __repr__(self) -> str:
        return f"SqliteStateStore({self.location!r})"

    # -- reading ----------------------------------------------------------------------------

    def read(self) -> StateSnapshot:
        with self._reading() as conn:
            if conn is None:
                return StateSnapshot.empty()
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            resources = {
                address: load_stored(self.location, address, text, ResourceRecord.from_dict)
                for address, text in conn.execute(
                    "SELECT address, record FROM resources ORDER BY address"
                )
            }
            checkpoints = {
                address: load_stored(self.location, f"the checkpoint of {address}", text, dict)
                for address, text in conn.execute(
                    "SELECT address, data FROM checkpoints ORDER BY address"
                )
            }
            return StateSnapshot(
                lineage=meta["lineage"],
                serial=int(meta["serial"]),
                resources=resources,
                checkpoints=checkpoints,
            )

    def history(self, address: str | None = None, limit: int | None = None) -> list[HistoryEntry]:
        query = f"SELECT {_HISTORY_COLUMNS} FROM history"
        params: list[Any] = []
        if address is not None:
            query += " WHERE address = ?"
            params.append(address)
        query += " ORDER BY id DESC"  # ids grow with every append, so this is newest first
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        with self._reading() as conn:
            if conn is None:
                return []
            names = [name.strip() for name in _HISTORY_COLUMNS.split(",")]
            return [
                HistoryEntry.from_dict(dict(zip(names, row, strict=True)))
                for row in conn.execute(query, params)
            ]

    def lock_holder(self) -> LockInfo | None:
        with self._reading() as conn:
            return None if conn is None else _lock_row(conn)

    # -- writing ----------------------------------------------------------------------------

    def put_resource(self, record: ResourceRecord, *, clear_checkpoint: bool = True) -> int:
        text = dump_json(record.to_dict(), record.address)
        with self._writing() as conn:
            self._check_lock(conn)
            row = conn.execute(
                "SELECT record FROM resources WHERE address = ?", (record.address,)
            ).fetchone()
            changed = row is None or row[0] != text
            if changed:
                conn.execute(
                    "INSERT OR REPLACE INTO resources (address, kind, status, record)"
                    " VALUES (?, ?, ?, ?)",
                    (record.address, record.kind, record.status, text),
                )
            if clear_checkpoint:
                cleared = conn.execute(
                    "DELETE FROM checkpoints WHERE address = ?", (record.address,)
                ).rowcount
                changed = changed or cleared > 0
            return _bump_serial(conn) if changed else _serial(conn)

    def remove_resource(self, address: str) -> int:
        with self._writing() as conn:
            self._check_lock(conn)
            removed = conn.execute("DELETE FROM resources WHERE address = ?", (address,)).rowcount
            removed += conn.execute(
                "DELETE FROM checkpoints WHERE address = ?", (address,)
            ).rowcount
            if not removed:
                raise StateError(f"{address} is not in state {self.location}")
            return _bump_serial(conn)

    def rename_resource(self, old: str, new: str) -> int:
        if old == new:
            raise StateError(f"cannot move {old} onto itself")
        with self._writing() as conn:
            self._check_lock(conn)
            if _holds(conn, new):
                raise StateError(f"cannot move {old} to {new}: {new} is already in state")
            if not _holds(conn, old):
                raise StateError(f"{old} is not in state {self.location}")
            row = conn.execute("SELECT record FROM resources WHERE address = ?", (old,)).fetchone()
            if row is not None:
                record = replace(
                    load_stored(self.location, old, row[0], ResourceRecord.from_dict), address=new
                )
                conn.execute(
                    "UPDATE resources SET address = ?, record = ? WHERE address = ?",
                    (new, dump_json(record.to_dict(), new), old),
                )
            conn.execute("UPDATE checkpoints SET address = ? WHERE address = ?", (new, old))
            # In the same write, so `dsdb history NEW` can follow the rename.
            _insert_history(conn, move_entry(old, new, **acting(_lock_row(conn))))
            return _bump_serial(conn)

    def save_checkpoint(self, address: str, data: dict[str, Any]) -> int:
        text = dump_json(data, f"the checkpoint of {address}")
        with self._writing() as conn:
            self._check_lock(conn)
            row = conn.execute(
                "SELECT data FROM checkpoints WHERE address = ?", (address,)
            ).fetchone()
            if row is not None and row[0] == text:
                return _serial(conn)
            conn.execute(
                "INSERT OR REPLACE INTO checkpoints (address, data) VALUES (?, ?)", (address, text)
            )
            return _bump_serial(conn)

    def clear_checkpoint(self, address: str) -> int:
        with self._writing() as conn:
            self._check_lock(conn)
            cleared = conn.execute("DELETE FROM checkpoints WHERE address = ?", (address,)).rowcount
            return _bump_serial(conn) if cleared else _serial(conn)

    def append_history(self, entry: HistoryEntry) -> None:
        with self._writing() as conn:
            # No lock check: history is a log, and a failed run's entry is worth keeping.
            _insert_history(conn, entry)

    def replace_all(self, snapshot: StateSnapshot) -> int:
        resources, checkpoints = serialized_snapshot(snapshot)
        with self._writing() as conn:
            self._check_lock(conn)
            current_resources = conn.execute(
                "SELECT address, kind, status, record FROM resources ORDER BY address"
            ).fetchall()
            current_checkpoints = conn.execute(
                "SELECT address, data FROM checkpoints ORDER BY address"
            ).fetchall()
            if current_resources == resources and current_checkpoints == checkpoints:
                return _serial(conn)
            if _serial(conn) == 0 and snapshot.lineage:
                # A state never written has no identity of its own yet: pushing into it is
                # its creation, so it takes the pushed lineage.
                conn.execute("UPDATE meta SET value = ? WHERE key = 'lineage'", (snapshot.lineage,))
            conn.execute("DELETE FROM resources")
            conn.execute("DELETE FROM checkpoints")
            conn.executemany(
                "INSERT INTO resources (address, kind, status, record) VALUES (?, ?, ?, ?)",
                resources,
            )
            conn.executemany("INSERT INTO checkpoints (address, data) VALUES (?, ?)", checkpoints)
            return _bump_serial(conn)

    # -- locking ----------------------------------------------------------------------------

    @contextmanager
    def lock(self, operation: str, user: str, timeout: float = 0) -> Iterator[LockInfo]:
        info = new_lock(operation, user)

        def attempt() -> LockInfo | None:
            nonlocal info
            info = replace(info, since=utc_now())
            return self._try_lock(info)

        wait_for_lock(attempt, self.location, timeout)
        try:
            yield info
        finally:
            with self._writing() as conn:
                # Only our own row: after a force-unlock the lock may belong to someone else.
                conn.execute("DELETE FROM lock WHERE id = ?", (info.id,))

    def force_unlock(self, lock_id: str) -> LockInfo:
        if not self.path.exists():  # nothing to unlock, and nothing to create
            raise LockError(f"state {self.location} is not locked")
        with self._writing() as conn:
            holder = _lock_row(conn)
            if holder is None:
                raise LockError(f"state {self.location} is not locked")
            if holder.id != lock_id:
                raise LockError(
                    f"lock id {lock_id} does not match the current lock: "
                    f"state {self.location} is {holder.describe()}"
                )
            conn.execute("DELETE FROM lock WHERE id = ?", (lock_id,))
            return holder

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- internals --------------------------------------------------------------------------

    def _try_lock(self, info: LockInfo) -> LockInfo | None:
        """Take the lock for `info`, or return the live holder that keeps us out."""
        with self._writing() as conn:
            holder = _lock_row(conn)
            if holder is not None:
                if not died_on_this_host(holder):
                    return holder
                # A killed apply must be resumable without a manual unlock.
                _log.warning("taking over the stale state lock: %s", holder.describe())
            conn.execute(
                "INSERT OR REPLACE INTO lock (slot, id, user, host, pid, since, operation)"
                " VALUES (1, ?, ?, ?, ?, ?, ?)",
                (info.id, info.user, info.host, info.pid, info.since, info.operation),
            )
            return None

    def _check_lock(self, conn: sqlite3.Connection) -> None:
        """Refuse a state write while another live process holds the lock."""
        holder = _lock_row(conn)
        if holder is None or died_on_this_host(holder) or held_by_this_process(holder):
            return
        raise LockError(lock_message(self.location, holder))

    def _connection(self, *, create: bool) -> sqlite3.Connection | None:
        if self._conn is None:
            if not self.path.exists():
                if not create:
                    return None
                _create(self.path)
            conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=rw",  # "rw" never creates the file
                uri=True,
                timeout=_BUSY_TIMEOUT_SECONDS,
                isolation_level=None,  # transactions are begun and ended explicitly below
                check_same_thread=False,
            )
            try:
                _inspect(conn, self.path)  # a clear error for a foreign file, before anything
                # WAL alone may lose the last commits on power loss; FULL makes them durable.
                conn.execute("PRAGMA synchronous = FULL")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            self._wal_checked = False
        return self._conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as error:
            raise StateError(storage_message(self.path, error, free_bytes(self.path))) from None

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on an initialized file at the current schema version."""
        with self._mutex, self._errors():
            conn = self._connection(create=True)
            assert conn is not None  # create=True always connects
            if not self._wal_checked:
                # Outside a transaction: SQLite cannot switch journal modes inside one.
                conn.execute("PRAGMA journal_mode = WAL")
                self._wal_checked = True
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = _inspect(conn, self.path)  # again: another process may have upgraded
                if version < SCHEMA_VERSION:
                    _upgrade(conn, version)
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection | None]:
        """A consistent read; None when the state was never written."""
        with self._mutex, self._errors():
            conn = self._connection(create=False)
            if conn is None:
                yield None
                return
            version = _inspect(conn, self.path)
            if version < SCHEMA_VERSION:
                # Read an upgraded copy: upgrading the file itself would make a plan write.
                copy = sqlite3.connect(":memory:", isolation_level=None)
                try:
                    conn.backup(copy)
                    copy.execute("BEGIN")
                    _upgrade(copy, version)
                    yield copy
                finally:
                    copy.close()
            else:
                conn.execute("BEGIN")  # one snapshot for all the queries of this read
                try:
                    yield conn
                finally:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")


def _create(path: Path) -> None:
    """Make a new, initialized state file at `path`, or leave the one another process just
    made. It is built under a temporary name and linked into place whole, so a state file
    never exists without its tables: one that has none was truncated or is not ours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        conn = sqlite3.connect(building, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("BEGIN IMMEDIATE")
            _upgrade(conn, 0)
            conn.execute("COMMIT")
        finally:
            conn.close()
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(building, path)
    finally:
        building.unlink(missing_ok=True)


def _inspect(conn: sqlite3.Connection, path: Path) -> int:
    """The file's schema version; StateError for a file that is damaged or not ours."""
    not_ours = f"{path} is not a dsdb state file"
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "meta" not in tables:
            raise StateError(_without_state(path, tables))
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as error:
        if not is_foreign_file(error):
            raise  # the disk, not the file: `_errors` says which
        raise StateError(f"{not_ours} ({error})") from None
    if meta.get("format") != _FORMAT:
        raise StateError(f"{not_ours} (its meta table does not name the dsdb state format)")
    try:
        version = int(meta["schema_version"])
    except (KeyError, ValueError):
        raise StateError(f"{path}: the state's schema version is missing or unreadable") from None
    if version > SCHEMA_VERSION:
        raise StateError(
            f"{path} was written by a newer dsdb (state schema version {version}; this dsdb "
            f"reads up to {SCHEMA_VERSION}); upgrade dsdb to use it"
        )
    return version


def _without_state(path: Path, tables: set[str]) -> str:
    if tables:
        return f"{path} is not a dsdb state file (it is an SQLite database without dsdb's tables)"
    size = path.stat().st_size
    what = "is empty (0 bytes)" if size == 0 else "holds no state (an SQLite file without tables)"
    return (
        f"state file {path} {what}: dsdb never leaves one so, so it was truncated or damaged. "
        "Move it aside, then put back a copy saved by `dsdb state pull` with "
        "`dsdb state push COPY`, or start afresh (the next plan creates every resource again)"
    )


def _upgrade(conn: sqlite3.Connection, version: int) -> None:
    """Apply the upgrade steps after `version`; 0 creates the state. Caller holds a write."""
    for step in _UPGRADES[version:]:
        for statement in step:
            conn.execute(statement)
    if version == 0:
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("format", _FORMAT), ("lineage", str(uuid.uuid4())), ("serial", "0")],
        )
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )


def _serial(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()[0])


def _bump_serial(conn: sqlite3.Connection) -> int:
    serial = _serial(conn) + 1
    conn.execute("UPDATE meta SET value = ? WHERE key = 'serial'", (str(serial),))
    return serial


def _holds(conn: sqlite3.Connection, address: str) -> bool:
    """Whether the state records `address`: a resource, or a checkpoint of unfinished work."""
    return any(
        conn.execute(f"SELECT 1 FROM {table} WHERE address = ?", (address,)).fetchone()
        for table in ("resources", "checkpoints")
    )


def _insert_history(conn: sqlite3.Connection, entry: HistoryEntry) -> None:
    values = entry.to_dict()
    values.pop("id")  # the store numbers entries
    values = {k: redact(v) if isinstance(v, str) else v for k, v in values.items()}
    columns = ", ".join(values)
    placeholders = ", ".join("?" for _ in values)
    conn.execute(f"INSERT INTO history ({columns}) VALUES ({placeholders})", list(values.values()))


def _lock_row(conn: sqlite3.Connection) -> LockInfo | None:
    row = conn.execute("SELECT id, user, host, pid, since, operation FROM lock").fetchone()
    if row is None:
        return None
    return LockInfo(id=row[0], user=row[1], host=row[2], pid=row[3], since=row[4], operation=row[5])
