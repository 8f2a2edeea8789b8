"""Portable digests (`digest.py`) computed by PostgreSQL, MariaDB and DuckDB themselves.

No row crosses the wire: the database writes each value's canonical text with its own
functions (its engine's `digest_sql`), hashes each row with MD5 and sums the hashes, so
verifying a server-side table costs one scan instead of streaming every row through Python.
A table is digested this way only when every column has such a form, given the source
column's portable type and the type the column really has here; otherwise `in_database`
returns None and the caller digests in Python. Both ways give the same digest for the same
data (tests/test_digest.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from dsdb_plan.checksum import DigestSQL
from dsdb_plan.dbschema import (
    ColumnSchema,
    TableSchema,
    portable_type,
    quote_identifier,
    reflected_columns,
)
from dsdb_plan.engines import engine_for
from dsdb_plan.migrate.digest import ESCAPED_TYPES

Summer = Callable[[sa.ColumnElement[bool] | None], tuple[int, int]]
"""sum(where) -> (rows, sum of row hashes) of the table's rows matching `where`"""

_INTEGERS = frozenset({"smallint", "integer", "bigint"})
_NUMBERS = frozenset({"float", "double", "decimal"})
_FLOATS = frozenset({"float", "double"})
_TEXTS = frozenset({"varchar", "text"})


def in_database(
    conn: sa.Connection,
    table: sa.TableClause | sa.Table,
    columns: Sequence[str],
    source: TableSchema,
) -> Summer | None:
    """How to digest `columns` of `table` in the database behind `conn`, or None.

    `source` gives each column's portable type in the source (what its values mean);
    `table` must be the object any `where` passed to the summer refers to.
    """
    sql = engine_for(conn.dialect).digest_sql(conn)
    if sql is None:
        return None
    reflected = reflected_columns(sa.inspect(conn), str(table.name))
    actual = {column["name"]: column["type"] for column in reflected}
    framed = []
    for name in columns:
        q = quote_identifier(conn.dialect, name)
        column = source.column(name)
        text = _text(sql, q, column, actual.get(name))
        if text is None:
            return None
        framed.append(sql.frame(q, text, escaped=column.type in ESCAPED_TYPES))
    row_hash: sa.ColumnElement[Any] = sa.literal_column(sql.row_hash(framed))
    total = sa.func.coalesce(sa.func.sum(row_hash), 0)

    def summer(where: sa.ColumnElement[bool] | None) -> tuple[int, int]:
        query = sa.select(sa.func.count(), total).select_from(table)
        query = query.where(where) if where is not None else query
        with sql.session(conn):
            rows, hashes = conn.execute(query).one()
        return int(rows), int(hashes)  # sums come back as Decimal: exact, however large

    return summer


def _text(sql: DigestSQL, q: str, source: ColumnSchema, type_: Any) -> str | None:
    """SQL writing the canonical text of column `q`'s value (NULL for NULL), or None when
    this pairing of source type and actual type has no SQL form."""
    if type_ is None:
        return None
    actual = portable_type(type_).type
    wanted = source.type
    if wanted in _INTEGERS and actual in _INTEGERS:
        return sql.integer_text(q)
    if wanted == "boolean" and (actual == "boolean" or actual in _INTEGERS):
        return sql.boolean_text(q, stored_as_boolean=actual == "boolean")
    if wanted in _NUMBERS and actual in _NUMBERS:
        if {wanted, actual} & _FLOATS:
            return sql.float_text(q, single=wanted == "float")
        return sql.decimal_text(q)
    if wanted in _TEXTS and actual in _TEXTS and isinstance(type_, sa.String):
        return q
    if wanted == actual == "binary":
        return sql.binary_text(q)
    if wanted == actual == "date":
        return sql.date_text(q)
    if wanted == actual == "datetime":
        return sql.datetime_text(q, zoned=bool(getattr(type_, "timezone", False)))
    if wanted == actual == "time":
        return sql.time_text(q)
    if wanted == actual == "uuid":
        return sql.uuid_text(q)
    return None  # JSON, and any other pairing: Python digests it
