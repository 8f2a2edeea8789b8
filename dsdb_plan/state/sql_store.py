"""The one state store: the `StateStore` rules over SQLAlchemy Core, for every backend.

A backend (the SQLite file, the PostgreSQL schema) opens transactions, names its tables'
location and keeps the lock; everything else is here once. Every write is one transaction
that first locks the `serial` row of `meta`, so concurrent writers queue up, every write sees
the one before it, and the serial moves in that same transaction. A read is one consistent
snapshot, and creates nothing. An older schema is upgraded by the first write; a read
upgrades inside its own transaction and rolls back, so a plan never changes the state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import Any, Protocol

import sqlalchemy as sa

from dsdb_plan.errors import LockError, StateError
from dsdb_plan.redact import redact
from dsdb_plan.state.records import (
    HistoryEntry,
    LockInfo,
    ResourceRecord,
    StateSnapshot,
    move_entry,
)
from dsdb_plan.state.store import (
    acting,
    dump_json,
    held_by_this_process,
    load_stored,
    lock_message,
    new_lock,
    serialized_snapshot,
    utc_now,
    wait_for_lock,
)
from dsdb_plan.state.tables import (
    FORMAT,
    SCHEMA_VERSION,
    checkpoints,
    history,
    meta,
    resources,
    upgrade,
)

# Built once: the statements every read or write runs.
_META = sa.select(meta.c.key, meta.c.value)
_VERSION = _META.where(meta.c.key.in_(("format", "schema_version")))
_SERIAL = sa.select(meta.c.value).where(meta.c.key == "serial").with_for_update()
_RESOURCES = sa.select(resources.c.address, resources.c.record).order_by(resources.c.address)
_CHECKPOINTS = sa.select(checkpoints.c.address, checkpoints.c.data).order_by(checkpoints.c.address)

Prepare = Callable[[sa.Connection], int]
"""prepare(conn): bring the state to the current schema in this write; return the serial."""


class Backend(Protocol):
    """Where a state lives and how it is locked: what differs between the stores."""

    location: str
    """Where the state lives, for messages; never contains a secret."""

    @property
    def schema(self) -> str | None:
        """The schema that holds the tables, None for the database's own."""
        ...

    @property
    def lock_table(self) -> sa.Table: ...

    @property
    def empty_is_new(self) -> bool:
        """Whether a place without tables is a state not written yet (else it is damage)."""
        ...

    def named(self, what: str) -> str:
        """`what` said of this state in a message, e.g. "{state} is not a dsdb state"."""
        ...

    def reading(self) -> AbstractContextManager[sa.Connection | None]:
        """A read-only snapshot transaction, rolled back; None when nothing was ever stored."""
        ...

    def writing(self, *, create: bool) -> AbstractContextManager[sa.Connection | None]:
        """A write transaction, committed on success; None if nothing exists and not `create`.

        Driver errors leave it as `StateError`s, as they leave `reading`.
        """
        ...

    def without_state(self, tables: set[str]) -> str:
        """The error for a place that holds `tables` but no state."""
        ...

    def upgrading(self, conn: sa.Connection, version: int) -> None:
        """About to upgrade from `version` (0: create) in this write: serialize, make room."""
        ...

    def holder(self, conn: sa.Connection) -> LockInfo | None:
        """The lock's holder as `lock_holder` reports it."""
        ...

    def blocking(self, conn: sa.Connection) -> LockInfo | None:
        """The holder that refuses writes, if any; the store lets this process's own through."""
        ...

    def acquire(self, info: LockInfo, prepare: Prepare) -> tuple[object, LockInfo | None]:
        """Take the lock for `info`: (what `release` needs, None), or (None, the holder)."""
        ...

    def release(self, held: object, info: LockInfo) -> None:
        """Give the lock up, only if the row still names `info` (a force-unlock may have
        handed it to someone else)."""
        ...

    def force_unlock(self, conn: sa.Connection, lock_id: str) -> LockInfo:
        """Break the lock `lock_id` in this write; `LockError` if it is not the current one."""
        ...

    def close(self) -> None: ...


class SqlStateStore:
    """A `StateStore` in the tables of `tables.py`, wherever `backend` keeps them."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.location = backend.location

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    # -- reading ----------------------------------------------------------------------------

    def read(self) -> StateSnapshot:
        with self._reading() as conn:
            if conn is None:
                return StateSnapshot.empty()
            values: dict[str, str] = dict(conn.execute(_META).all())
            records = {
                address: load_stored(self.location, address, text, ResourceRecord.from_dict)
                for address, text in conn.execute(_RESOURCES)
            }
            checkpoint_data = {
                address: load_stored(self.location, f"the checkpoint of {address}", text, dict)
                for address, text in conn.execute(_CHECKPOINTS)
            }
            return StateSnapshot(
                lineage=values["lineage"],
                serial=int(values["serial"]),
                resources=records,
                checkpoints=checkpoint_data,
            )

    def history(self, address: str | None = None, limit: int | None = None) -> list[HistoryEntry]:
        # Ids grow with every append, so this is newest first.
        query = (
            sa.select(*(column.label(column.key) for column in history.c))
            .order_by(history.c.id.desc())
            .limit(limit)
        )
        if address is not None:
            query = query.where(history.c.address == address)
        with self._reading() as conn:
            if conn is None:
                return []
            return [HistoryEntry.from_dict(row._asdict()) for row in conn.execute(query)]

    def lock_holder(self) -> LockInfo | None:
        with self._reading() as conn:
            return None if conn is None else self._backend.holder(conn)

    # -- writing ----------------------------------------------------------------------------

    def put_resource(self, record: ResourceRecord, *, clear_checkpoint: bool = True) -> int:
        text = dump_json(record.to_dict(), record.address)
        with self._writing() as (conn, serial):
            where = resources.c.address == record.address
            changed = conn.scalar(sa.select(resources.c.record).where(where)) != text
            if changed:
                conn.execute(resources.delete().where(where))
                conn.execute(
                    resources.insert().values(
                        address=record.address, kind=record.kind, status=record.status, record=text
                    )
                )
            if clear_checkpoint:
                changed = _delete(conn, checkpoints, record.address) > 0 or changed
            return _bump_serial(conn, serial) if changed else serial

    def remove_resource(self, address: str) -> int:
        with self._writing() as (conn, serial):
            removed = _delete(conn, resources, address) + _delete(conn, checkpoints, address)
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
            stored = conn.scalar(sa.select(resources.c.record).where(resources.c.address == old))
            if stored is not None:
                moved = replace(
                    load_stored(self.location, old, stored, ResourceRecord.from_dict), address=new
                )
                conn.execute(
                    resources.update()
                    .where(resources.c.address == old)
                    .values(address=new, record=dump_json(moved.to_dict(), new))
                )
            conn.execute(
                checkpoints.update().where(checkpoints.c.address == old).values(address=new)
            )
            # In the same write, so `dsdb history NEW` can follow the rename.
            _insert_history(conn, move_entry(old, new, **acting(self._backend.holder(conn))))
            return _bump_serial(conn, serial)

    def save_checkpoint(self, address: str, data: dict[str, Any]) -> int:
        text = dump_json(data, f"the checkpoint of {address}")
        with self._writing() as (conn, serial):
            where = checkpoints.c.address == address
            if conn.scalar(sa.select(checkpoints.c.data).where(where)) == text:
                return serial
            conn.execute(checkpoints.delete().where(where))
            conn.execute(checkpoints.insert().values(address=address, data=text))
            return _bump_serial(conn, serial)

    def clear_checkpoint(self, address: str) -> int:
        with self._writing() as (conn, serial):
            cleared = _delete(conn, checkpoints, address)
            return _bump_serial(conn, serial) if cleared else serial

    def append_history(self, entry: HistoryEntry) -> None:
        # No lock check and no serial: history is a log, and a failed run's entry is worth
        # keeping.
        with self._writing(check_lock=False) as (conn, _):
            _insert_history(conn, entry)

    def replace_all(self, snapshot: StateSnapshot) -> int:
        wanted_resources, wanted_checkpoints = serialized_snapshot(snapshot)
        with self._writing() as (conn, serial):
            current_resources = sorted(
                tuple(row)
                for row in conn.execute(
                    sa.select(
                        resources.c.address,
                        resources.c.kind,
                        resources.c.status,
                        resources.c.record,
                    )
                )
            )
            current_checkpoints = sorted(
                tuple(row)
                for row in conn.execute(sa.select(checkpoints.c.address, checkpoints.c.data))
            )
            if current_resources == wanted_resources and current_checkpoints == wanted_checkpoints:
                return serial
            if serial == 0 and snapshot.lineage:
                # A state never written has no identity of its own yet: pushing into it is
                # its creation, so it takes the pushed lineage.
                conn.execute(
                    meta.update().where(meta.c.key == "lineage").values(value=snapshot.lineage)
                )
            conn.execute(resources.delete())
            conn.execute(checkpoints.delete())
            if wanted_resources:
                conn.execute(
                    resources.insert(),
                    [
                        {"address": a, "kind": k, "status": s, "record": r}
                        for a, k, s, r in wanted_resources
                    ],
                )
            if wanted_checkpoints:
                conn.execute(
                    checkpoints.insert(), [{"address": a, "data": d} for a, d in wanted_checkpoints]
                )
            return _bump_serial(conn, serial)

    # -- locking ----------------------------------------------------------------------------

    @contextmanager
    def lock(self, operation: str, user: str, timeout: float = 0) -> Iterator[LockInfo]:
        info = new_lock(operation, user)
        held: object = None

        def attempt() -> LockInfo | None:
            nonlocal info, held
            info = replace(info, since=utc_now())
            held, holder = self._backend.acquire(info, self._prepare)
            return holder

        wait_for_lock(attempt, self.location, timeout)
        try:
            yield info
        finally:
            self._backend.release(held, info)

    def force_unlock(self, lock_id: str) -> LockInfo:
        with self._backend.writing(create=False) as conn:
            if conn is None or self._version(conn) == 0:  # nothing to unlock, nor to create
                raise LockError(f"state {self.location} is not locked")
            return self._backend.force_unlock(conn, lock_id)

    def close(self) -> None:
        self._backend.close()

    # -- internals --------------------------------------------------------------------------

    @contextmanager
    def _writing(self, *, check_lock: bool = True) -> Iterator[tuple[sa.Connection, int]]:
        """One write transaction at the current schema version, with the serial row locked.

        Yields the connection and the serial before the write.
        """
        with self._backend.writing(create=True) as conn:
            assert conn is not None  # create=True always gives one
            serial = self._prepare(conn)
            if check_lock:
                holder = self._backend.blocking(conn)
                if holder is not None and not held_by_this_process(holder):
                    raise LockError(lock_message(self.location, holder))
            yield conn, serial

    @contextmanager
    def _reading(self) -> Iterator[sa.Connection | None]:
        with self._backend.reading() as conn:
            version = 0 if conn is None else self._version(conn)
            if conn is None or version == 0:
                yield None
                return
            if version < SCHEMA_VERSION:
                # Upgraded inside this transaction, which is rolled back: DDL is
                # transactional in every backend, so a plan sees the new schema and changes
                # nothing.
                self._upgrade(conn, version)
            yield conn

    def _prepare(self, conn: sa.Connection) -> int:
        """Bring the state to the current version and lock the serial row; return the serial."""
        version = self._version(conn)
        if version < SCHEMA_VERSION:
            self._backend.upgrading(conn, version)
            version = self._version(conn)  # again: another process may have just done it
            if version < SCHEMA_VERSION:
                self._upgrade(conn, version)
        return int(conn.execute(_SERIAL).scalar_one())

    def _upgrade(self, conn: sa.Connection, version: int) -> None:
        upgrade(conn, version, self._backend.lock_table, self._backend.schema)

    def _version(self, conn: sa.Connection) -> int:
        """The state's schema version, 0 if never written; StateError if it is not ours."""
        named = self._backend.named
        # One statement, so one snapshot: tables another session is creating appear at once.
        tables = set(sa.inspect(conn).get_table_names(schema=self._backend.schema))
        if "meta" not in tables:
            if tables or not self._backend.empty_is_new:
                raise StateError(self._backend.without_state(tables))
            return 0
        values = dict(conn.execute(_VERSION).all())
        if values.get("format") != FORMAT:
            raise StateError(
                named("is not a dsdb state (its meta table does not name the dsdb state format)")
            )
        try:
            version = int(values["schema_version"])
        except (KeyError, ValueError):
            raise StateError(
                named("has a state schema version that is missing or unreadable")
            ) from None
        if version > SCHEMA_VERSION:
            raise StateError(
                named(
                    f"was written by a newer dsdb (state schema version {version}; this dsdb "
                    f"reads up to {SCHEMA_VERSION}); upgrade dsdb to use it"
                )
            )
        return version


def _bump_serial(conn: sa.Connection, serial: int) -> int:
    conn.execute(meta.update().where(meta.c.key == "serial").values(value=str(serial + 1)))
    return serial + 1


def _delete(conn: sa.Connection, table: sa.Table, address: str) -> int:
    return conn.execute(table.delete().where(table.c.address == address)).rowcount


def _holds(conn: sa.Connection, address: str) -> bool:
    """Whether the state records `address`: a resource, or a checkpoint of unfinished work."""
    return any(
        conn.scalar(sa.select(sa.literal(1)).where(table.c.address == address))
        for table in (resources, checkpoints)
    )


def _insert_history(conn: sa.Connection, entry: HistoryEntry) -> None:
    values = {
        name: redact(value) if isinstance(value, str) else value
        for name, value in entry.to_dict().items()
        if name != "id"  # the store numbers entries
    }
    conn.execute(history.insert().values(**values))
