"""The one way dsdb reads rows for hashing in Python: plain tuples, a bounded chunk at a time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain
from typing import Any

import sqlalchemy as sa

from dsdb_plan.engines import registration_for


def read_chunks(
    conn: sa.Connection, query: sa.Executable, size: int
) -> Iterator[Sequence[tuple[Any, ...]]]:
    """The query's rows as plain tuples, `size` at a time: memory bounded by one chunk.

    Its columns should be untyped (`sa.column`, `type_coerce` to NullType): raw driver values,
    which SQLAlchemy's processors would otherwise parse (SQLite's text dates). Binary values
    come as `bytes`, whatever the driver returns.
    """
    if registration_for(conn.dialect).embedded:
        # pysqlite steps the statement as rows are fetched, so its own cursor is bounded, and
        # reading it directly skips building a Row per row, which cost 3x the hashing here.
        # Its binary values are bytes already.
        cursor = conn.execute(query).cursor
        while chunk := cursor.fetchmany(size):
            yield chunk
        return
    # Elsewhere a server-side cursor keeps memory bounded (yield_per implies stream_results).
    # Set on the statement: set on the connection, they would outlast this read.
    result = conn.execute(query.execution_options(yield_per=size))
    for part in result.partitions():
        rows = list(map(tuple, part))
        # Some drivers return binary as memoryview or bytearray, whose repr shows an address.
        # One test of the chunk's value classes (in C) spares most chunks a call per value.
        if not _BINARY_VIEWS.isdisjoint(map(type, chain.from_iterable(rows))):
            rows = [tuple(map(_plain, row)) for row in rows]
        yield rows


_BINARY_VIEWS = frozenset((memoryview, bytearray))


def _plain(value: Any) -> Any:
    return bytes(value) if value.__class__ in _BINARY_VIEWS else value
