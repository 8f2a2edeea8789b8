"""Portable digests (`digest.py`) computed by PostgreSQL and MariaDB themselves.

No row crosses the wire: the database writes each value's canonical text with its own
functions, hashes each row with MD5 and sums the hashes, so verifying a server-side table
costs one scan instead of streaming every row through Python. A table is digested this way
only when every column has such a form, given the source column's portable type and the
type the column really has here; otherwise `in_database` returns None and the caller
digests in Python. Both ways give the same digest for the same data (tests/test_digest.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from dsdb_plan.dbschema import (
    ColumnSchema,
    TableSchema,
    portable_type,
    quote_identifier,
    reflected_columns,
)
from dsdb_plan.engines import Engine, known_engine
from dsdb_plan.engines.mysql import ENGINE as MYSQL
from dsdb_plan.engines.mysql import utc_time_zone
from dsdb_plan.engines.postgresql import ENGINE as POSTGRESQL
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
    engine = _engine(conn)
    if engine is None:
        return None
    reflected = reflected_columns(sa.inspect(conn), str(table.name))
    actual = {column["name"]: column["type"] for column in reflected}
    framed = []
    for name in columns:
        q = quote_identifier(conn.dialect, name)
        column = source.column(name)
        token = _token(engine, q, column, actual.get(name))
        if token is None:
            return None
        framed.append(_FRAME[engine](q, token, column.type in ESCAPED_TYPES))
    row_hash: sa.ColumnElement[Any] = sa.literal_column(_ROW_HASH[engine](framed))
    total = sa.func.coalesce(sa.func.sum(row_hash), 0)

    def summer(where: sa.ColumnElement[bool] | None) -> tuple[int, int]:
        query = sa.select(sa.func.count(), total).select_from(table)
        query = query.where(where) if where is not None else query
        with _session(conn, engine):
            rows, hashes = conn.execute(query).one()
        return int(rows), int(hashes)  # sums come back as Decimal: exact, however large

    return summer


def _engine(conn: sa.Connection) -> Engine | None:
    """PostgreSQL's or MariaDB's engine when this server writes every form the digest needs."""
    engine = known_engine(conn.dialect)
    if engine is POSTGRESQL:
        version = conn.dialect.server_version_info or (0,)
        encoding = conn.exec_driver_sql("SHOW server_encoding").scalar()
        # 12 writes floats with their shortest exact digits, 14 has numeric infinities; md5()
        # hashes the server's bytes.
        return engine if version >= (14,) and encoding == "UTF8" else None
    if engine is MYSQL and getattr(conn.dialect, "is_mariadb", False):
        return engine  # MySQL's text forms differ: digested in Python
    return None


@contextmanager
def _session(conn: sa.Connection, engine: Engine) -> Iterator[None]:
    """Settings the text forms depend on, which a role or server default may have changed."""
    if engine is POSTGRESQL:
        # Local to the transaction: shortest exact float digits whatever the default; and no
        # JIT, whose compiling of these long expressions costs more than it saves.
        conn.execute(
            sa.text(
                "SELECT set_config('extra_float_digits', '1', true), set_config('jit', 'off', true)"
            )
        )
        yield
        return
    with utc_time_zone(conn):
        yield


def _token(engine: Engine, q: str, source: ColumnSchema, type_: Any) -> str | None:
    """SQL writing the canonical text of column `q`'s value (NULL for NULL), or None when
    this pairing of source type and actual type has no SQL form."""
    if type_ is None:
        return None
    actual = portable_type(type_).type
    wanted = source.type
    pg = engine is POSTGRESQL
    if wanted in _INTEGERS and actual in _INTEGERS:
        return f"{q}::text" if pg else f"CAST({q} AS CHAR)"
    if wanted == "boolean" and pg and actual == "boolean":
        return f"CASE {q} WHEN true THEN 'true' WHEN false THEN 'false' END"
    if wanted == "boolean" and (actual == "boolean" or actual in _INTEGERS):
        other = f"'?' || {q}::text" if pg else f"CONCAT('?', {q})"  # NULL for NULL
        return f"CASE {q} WHEN 1 THEN 'true' WHEN 0 THEN 'false' ELSE {other} END"
    if wanted in _NUMBERS and actual in _NUMBERS:
        single = wanted == "float"
        if {wanted, actual} & _FLOATS:
            return _pg_float(q, single) if pg else _mariadb_float(q, single)
        return _pg_decimal(q) if pg else _mariadb_decimal(q)
    if wanted in _TEXTS and actual in _TEXTS and isinstance(type_, sa.String):
        return q
    if wanted == "binary" and actual == "binary":
        return f"encode({q}, 'hex')" if pg else f"LOWER(HEX({q}))"
    if wanted == "date" and actual == "date":
        return f"to_char({q}, 'YYYY-MM-DD')" if pg else f"DATE_FORMAT({q}, '%Y-%m-%d')"
    if wanted == "datetime" and actual == "datetime":
        if not pg:
            return f"DATE_FORMAT({q}, '%Y-%m-%dT%H:%i:%s.%f')"
        utc = f"({q} AT TIME ZONE 'UTC')" if getattr(type_, "timezone", False) else q
        return f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
    if wanted == "time" and actual == "time":
        if not pg:
            return f"TIME_FORMAT({q}, '%H:%i:%s.%f')"
        # A time with a zone keeps its local time and drops the zone, as in Python.
        return f"to_char(TIMESTAMP '2000-01-01' + {q}::time, 'HH24:MI:SS.US')"
    if wanted == "uuid" and actual == "uuid" and pg:
        return f"{q}::text"
    return None  # JSON, and any other pairing: Python digests it


# Numbers are written as plain decimals without trailing zeros (`digest.number_text`). Each
# database writes a float's shortest exact digits, plainly for most values, which are then
# kept as they are; only the rest (1e+20, 1.5e-07) is rewritten, so most values cost little.


def _pg_float(q: str, single: bool) -> str:
    value = f"{q}::real::float8" if single else f"{q}::float8"
    text = _pg_shortest(value)
    return (
        f"CASE WHEN {value} = 0 THEN '0' WHEN {value} = 'NaN' THEN 'nan' "
        f"WHEN {value} = 'Infinity' THEN 'inf' WHEN {value} = '-Infinity' THEN '-inf' "
        f"WHEN strpos({text}, 'e') = 0 THEN {text} ELSE ({text})::numeric::text END"
    )


def _pg_decimal(q: str) -> str:
    return (
        f"CASE WHEN {q} = 0 THEN '0' WHEN {q} = 'NaN' THEN 'nan' "
        f"WHEN {q} = 'Infinity' THEN 'inf' WHEN {q} = '-Infinity' THEN '-inf' "
        f"ELSE trim_scale({q})::text END"
    )


def _pg_shortest(value: str) -> str:
    """The shortest digits that read back as the double `value`, as Python's repr.

    PostgreSQL writes them itself, except for some doubles of 2**53 and more (all of them
    integers): where a shorter decimal lies exactly halfway to the next double it writes
    more digits (5.9996735811599744e+16 for 5.999673581159974e+16). For those, round to
    1, 2, ... 17 significant digits and take the first that reads back.
    """
    exact = f"{value}::text::numeric"
    width = f"length(trunc(abs({exact}))::text)"
    tries = []
    for digits in range(1, 18):
        rounded = f"round({exact}, {digits} - {width})"
        # Rounding up past the largest double would fail the cast back.
        reads_back = (
            f"CASE WHEN abs({rounded}) <= {_LARGEST_DOUBLE} "
            f"THEN {rounded}::float8 = {value} ELSE false END"
        )
        tries.append(f"WHEN {reads_back} THEN {rounded}::text")
    return (
        f"CASE WHEN abs({value}) >= 9007199254740992 AND abs({value}) < 'Infinity' "
        f"THEN CASE {' '.join(tries)} END ELSE {value}::text END"
    )


_LARGEST_DOUBLE = "179769313486231570" + "0" * 291


def _mariadb_float(q: str, single: bool) -> str:
    """MariaDB has no NaN or infinities; its scientific form is `d.ddde[-]x`."""
    value = f"CAST(CAST({q} AS FLOAT) AS DOUBLE)" if single else f"CAST({q} AS DOUBLE)"
    text = f"CAST({value} AS CHAR)"
    sign = f"IF({value} < 0, '-', '')"
    power = f"CAST(SUBSTRING_INDEX({text}, 'e', -1) AS SIGNED)"
    digits = f"REPLACE(TRIM(LEADING '-' FROM SUBSTRING_INDEX({text}, 'e', 1)), '.', '')"
    width = f"CHAR_LENGTH({digits})"
    plain = (
        f"IF({power} < 0, CONCAT({sign}, '0.', REPEAT('0', -{power} - 1), {digits}), "
        f"IF({width} - 1 <= {power}, CONCAT({sign}, {digits}, REPEAT('0', {power} - {width} + 1)), "
        f"CONCAT({sign}, LEFT({digits}, {power} + 1), '.', SUBSTRING({digits}, {power} + 2))))"
    )
    return f"IF({value} = 0, '0', IF(LOCATE('e', {text}) = 0, {text}, {plain}))"


def _mariadb_decimal(q: str) -> str:
    text = f"CAST({q} AS CHAR)"
    trimmed = f"TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {text}))"
    return f"IF({q} = 0, '0', IF(LOCATE('.', {text}) = 0, {text}, {trimmed}))"


# A row's values, each written once: NULL as a backslash and N, text with its backslashes
# doubled and a backslash before each separator (U+001F), which joins them. CHR and CHAR
# spell the two characters whatever the server's string escaping mode.


def _pg_frame(q: str, token: str, escaped: bool) -> str:
    text = f"({token})"
    if escaped:
        text = f"replace(replace({text}, chr(92), chr(92) || chr(92)), chr(31), chr(92) || chr(31))"
    return f"CASE WHEN {q} IS NULL THEN chr(92) || 'N' ELSE {text} END"


def _mariadb_frame(q: str, token: str, escaped: bool) -> str:
    text = f"CONVERT(({token}) USING utf8mb4)"
    if escaped:
        text = (
            f"REPLACE(REPLACE({text}, {_BACKSLASH}, CONCAT({_BACKSLASH}, {_BACKSLASH})),"
            f" {_SEPARATOR}, CONCAT({_BACKSLASH}, {_SEPARATOR}))"
        )
    return f"IF({q} IS NULL, CONCAT({_BACKSLASH}, 'N'), {text})"


_BACKSLASH = "CHAR(92 USING utf8mb4)"
_SEPARATOR = "CHAR(31 USING utf8mb4)"


def _pg_row_hash(parts: Sequence[str]) -> str:
    row = " || chr(31) || ".join(f"({part})" for part in parts)
    # The first 16 hex digits as a signed 64-bit integer: sums agree modulo 2**64.
    return f"('x' || substr(md5({row}), 1, 16))::bit(64)::bigint"


def _mariadb_row_hash(parts: Sequence[str]) -> str:
    row = f"CONCAT_WS({_SEPARATOR}, {', '.join(parts)})"
    return f"CAST(CONV(SUBSTRING(MD5({row}), 1, 16), 16, 10) AS UNSIGNED)"


_FRAME: dict[Engine, Callable[[str, str, bool], str]] = {
    POSTGRESQL: _pg_frame,
    MYSQL: _mariadb_frame,
}
_ROW_HASH: dict[Engine, Callable[[Sequence[str]], str]] = {
    POSTGRESQL: _pg_row_hash,
    MYSQL: _mariadb_row_hash,
}
