"""Read what a PostgreSQL transaction sees from a second connection, at the same time.

A copy digests the source rows in the snapshot it reads them in, so that the digest and the
copied rows agree whatever commits meanwhile. PostgreSQL can hand a transaction's snapshot
to another session (`pg_export_snapshot`, `SET TRANSACTION SNAPSHOT`), so the digest runs on
a connection of its own while the copy streams the rows, instead of before it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import sqlalchemy as sa

T = TypeVar("T")


def beside(conn: sa.Connection, work: Callable[[sa.Connection], T]) -> Future[T] | None:
    """Start `work` in a thread on a new connection that sees exactly what `conn`'s open
    transaction (REPEATABLE READ) sees; None where that snapshot cannot be shared (not
    PostgreSQL, or a standby in recovery): the caller then works on `conn` itself.

    Returns once the new connection holds the snapshot, so `conn` may end its transaction
    any time after.
    """
    if conn.dialect.name != "postgresql":
        return None
    if conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar_one():
        return None
    snapshot = str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())
    holding = threading.Event()

    def run() -> T:
        try:
            with conn.engine.connect() as other:
                other.execution_options(isolation_level="REPEATABLE READ")
                # An identifier the server made (hex digits and dashes), not user input.
                other.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                holding.set()
                return work(other)
        finally:
            holding.set()

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsdb-snapshot")
    future = pool.submit(run)
    pool.shutdown(wait=False)
    holding.wait()
    return future
