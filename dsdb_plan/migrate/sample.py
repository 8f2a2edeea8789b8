"""Sampled subsets: a deterministic share of a table's rows, as a condition in SQL.

A row is in the sample when a hash of its key and the sample's seed is small enough:
`{percent: 10}` keeps the rows whose hash falls in the lowest tenth of the hash's range,
`{rows: 5000}` the 5,000 rows with the lowest hashes. The hash is computed by the source
database (MD5 of the seed and the key's text, its first 32 bits; SQLite gets the function
from `dsdb_plan.sqlfunctions`), so the sample is a condition like any `where`: it combines
with the table's filter, `follow` completes it with parents or children, and the copier
reads it with one streamed SELECT. A row's hash never changes, so every apply takes the same
rows, and rows added to the source join a percentage sample only when their own hash is
small enough (a `rows` sample keeps its count, so a new row may displace one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from dsdb_plan.engines import engine_for
from dsdb_plan.errors import PlanError
from dsdb_plan.models import Sample

#: The hash is an unsigned 32-bit integer.
HASH_RANGE = 2**32


class StableHash(sa.sql.functions.FunctionElement[int]):
    """The first 32 bits of MD5(text), the same number on every engine."""

    type = sa.BigInteger()
    name = "dsdb_stable_hash"
    inherit_cache = True


@compiles(StableHash)
def _stable_hash(element: StableHash, compiler: SQLCompiler, **kw: Any) -> str:
    return engine_for(compiler.dialect).stable_hash(compiler.process(element.clauses, **kw))


def row_hash(table: sa.Table, key: Sequence[str], seed: int | str) -> sa.ColumnElement[int]:
    """The hash of each row: MD5 of `seed|key1|key2...` (NULL key parts as empty text)."""
    parts: list[sa.ColumnElement[str]] = [sa.literal(f"{seed}", sa.String)]
    for column in key:
        text = sa.func.coalesce(sa.cast(table.c[column], sa.String), sa.literal("", sa.String))
        parts += [sa.literal("|", sa.String), text]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + part
    return StableHash(joined)


def sample_condition(
    table: sa.Table,
    key: Sequence[str],
    sample: Sample,
    rows: sa.ColumnElement[bool] | None,
) -> sa.ColumnElement[bool]:
    """The rows of `table` (among `rows`, None for all) that the sample keeps."""
    if not key:
        raise PlanError(
            f"table {table.name!r}: sample needs a key to choose rows by "
            "(a primary key, or `key:` in the manifest)"
        )
    hashed = row_hash(table, key, sample.seed)
    if sample.percent is not None:
        kept = hashed < int(HASH_RANGE * sample.percent / 100)
        return kept if rows is None else sa.and_(rows, kept)
    # The inner FROM names the table again; correlate(None) keeps it (an inner scope).
    chosen = sa.select(*(table.c[column] for column in key)).correlate(None)
    if rows is not None:
        chosen = chosen.where(rows)
    lowest = (
        chosen.order_by(hashed, *(table.c[column] for column in key)).limit(sample.rows).subquery()
    )
    # The IN reads a derived table: MariaDB/MySQL refuse LIMIT directly inside IN (...).
    keys = sa.select(*(lowest.c[column] for column in key)).correlate(None)
    if len(key) == 1:
        return table.c[key[0]].in_(keys)
    return sa.tuple_(*(table.c[column] for column in key)).in_(keys)
