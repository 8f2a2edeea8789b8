"""One consistent snapshot of a database, opened the one way its engine knows.

A backup reads every table as of one instant (`consistent_snapshot`); a copy digests the
source rows in the snapshot it reads them in, so that the digest and the copied rows agree
whatever commits meanwhile. Where the engine can hand a transaction's snapshot to another
session (PostgreSQL's `pg_export_snapshot`), the digest runs on a connection of its own
while the copy streams the rows (`beside`), instead of before it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import sqlalchemy as sa

from dsdb_plan.engines import engine_for

T = TypeVar("T")


@contextlib.contextmanager
def consistent_snapshot(engine: sa.Engine, *, read_only: bool = False) -> Iterator[sa.Connection]:
    """A connection in one transaction that sees every table as of the same instant; rolled
    back at the end of the block."""
    with engine.connect() as conn:
        try:
            engine_for(conn.dialect).begin_snapshot(conn, read_only=read_only)
            yield conn
        finally:
            conn.rollback()


def beside(conn: sa.Connection, work: Callable[[sa.Connection], T]) -> Future[T] | None:
    """Start `work` in a thread on a new connection that sees exactly what `conn`'s open
    snapshot (`Engine.begin_snapshot`) sees; None where that snapshot cannot be shared (an
    engine without `exports_snapshots`, or a standby in recovery): the caller then works on
    `conn` itself.

    Returns once the new connection holds the snapshot, so `conn` may end its transaction
    any time after.
    """
    engine = engine_for(conn.dialect)
    if not engine.capabilities.exports_snapshots:
        return None
    token = engine.export_snapshot(conn)
    if token is None:
        return None
    holding = threading.Event()

    def run() -> T:
        try:
            with conn.engine.connect() as other:
                engine.join_snapshot(other, token)
                holding.set()
                return work(other)
        finally:
            holding.set()

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsdb-snapshot")
    future = pool.submit(run)
    pool.shutdown(wait=False)
    holding.wait()
    return future
