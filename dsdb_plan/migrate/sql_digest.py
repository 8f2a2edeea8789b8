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

from dsdb_plan.dbschema import ColumnSchema, TableSchema, portable_type, quote_identifier

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
    dialect = _dialect(conn)
    if dialect is None:
        return None
    actual = {info["name"]: info["type"] for info in sa.inspect(conn).get_columns(str(table.name))}
    if dialect == "mariadb":  # see dbschema: reflected names come back with `` doubled
        actual = {name.replace("``", "`"): type_ for name, type_ in actual.items()}
    forms = []
    for name in columns:
        form = _form(
            dialect, quote_identifier(conn.dialect, name), source.column(name), actual.get(name)
        )
        if form is None:
            return None
        forms.append(form)
    # PostgreSQL writes each value's text once, in a subquery that OFFSET 0 keeps from being
    # folded into the outer query (which would write it again for every use there). MariaDB
    # would cut the texts to its guess of their length there, and its texts are cheap.
    nested = dialect == "postgresql"
    texts: list[sa.Label[Any]] = [
        sa.literal_column(text).label(f"v{i}") for i, (text, _) in enumerate(forms)
    ]
    refs = [f"v{i}" if nested else f"({text})" for i, (text, _) in enumerate(forms)]
    digits = _pg_digits if nested else _mariadb_digits
    framed = [
        _FRAME[dialect](ref, digits(ref) if number else ref)
        for ref, (_, number) in zip(refs, forms, strict=True)
    ]
    row_hash: sa.ColumnElement[Any] = sa.literal_column(_ROW_HASH[dialect](framed))
    total = sa.func.coalesce(sa.func.sum(row_hash), 0)

    def summer(where: sa.ColumnElement[bool] | None) -> tuple[int, int]:
        query = sa.select(sa.func.count(), total)
        if nested:
            inner = sa.select(*texts).select_from(table)
            inner = inner.where(where) if where is not None else inner
            query = query.select_from(inner.offset(0).subquery("d"))
        else:
            query = query.select_from(table)
            query = query.where(where) if where is not None else query
        with _session(conn, dialect):
            rows, hashes = conn.execute(query).one()
        return int(rows), int(hashes)  # sums come back as Decimal: exact, however large

    return summer


def _dialect(conn: sa.Connection) -> str | None:
    """'postgresql' or 'mariadb' when this server writes every form the digest needs."""
    if conn.dialect.name == "postgresql":
        version = conn.dialect.server_version_info or (0,)
        encoding = conn.exec_driver_sql("SHOW server_encoding").scalar()
        # 12 writes floats with the shortest exact digits; md5() hashes the server's bytes.
        return "postgresql" if version >= (12,) and encoding == "UTF8" else None
    if conn.dialect.name in ("mysql", "mariadb") and getattr(conn.dialect, "is_mariadb", False):
        return "mariadb"
    return None


@contextmanager
def _session(conn: sa.Connection, dialect: str) -> Iterator[None]:
    """Settings the text forms depend on, which a role or server default may have changed."""
    if dialect == "postgresql":
        # Local to the transaction: shortest exact float digits whatever the default.
        conn.execute(sa.text("SELECT set_config('extra_float_digits', '1', true)"))
        yield
        return
    # MariaDB shows TIMESTAMP values in the session time zone; give the session its own back.
    zone = conn.execute(sa.text("SELECT @@session.time_zone")).scalar_one()
    conn.execute(sa.text("SET time_zone = '+00:00'"))
    try:
        yield
    finally:
        conn.execute(sa.text("SET time_zone = :zone"), {"zone": zone})


def _form(dialect: str, q: str, source: ColumnSchema, type_: Any) -> tuple[str, bool] | None:
    """SQL writing the text of column `q`'s value (NULL for NULL), and whether that text is
    a number still to be put in canonical form; None when this pairing has no SQL form."""
    if type_ is None:
        return None
    actual = portable_type(type_).type
    wanted = source.type
    pg = dialect == "postgresql"
    if wanted in _INTEGERS and actual in _INTEGERS:
        return (f"{q}::text" if pg else f"CAST({q} AS CHAR)"), False
    if wanted == "boolean" and pg and actual == "boolean":
        return f"CASE {q} WHEN true THEN 'true' WHEN false THEN 'false' END", False
    if wanted == "boolean" and (actual == "boolean" or actual in _INTEGERS):
        other = f"'?' || {q}::text" if pg else f"CONCAT('?', {q})"  # NULL for NULL
        return f"CASE {q} WHEN 1 THEN 'true' WHEN 0 THEN 'false' ELSE {other} END", False
    if wanted in _NUMBERS and actual in _NUMBERS:
        floating = bool({wanted, actual} & _FLOATS)
        return _number_text(dialect, q, single=wanted == "float", floating=floating), True
    if wanted in _TEXTS and actual in _TEXTS and isinstance(type_, sa.String):
        return q, False
    if wanted == "binary" and actual == "binary":
        return (f"encode({q}, 'hex')" if pg else f"LOWER(HEX({q}))"), False
    if wanted == "date" and actual == "date":
        return (f"to_char({q}, 'YYYY-MM-DD')" if pg else f"DATE_FORMAT({q}, '%Y-%m-%d')"), False
    if wanted == "datetime" and actual == "datetime":
        if not pg:
            return f"DATE_FORMAT({q}, '%Y-%m-%dT%H:%i:%s.%f')", False
        utc = f"({q} AT TIME ZONE 'UTC')" if getattr(type_, "timezone", False) else q
        return f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US')", False
    if wanted == "time" and actual == "time":
        if not pg:
            return f"TIME_FORMAT({q}, '%H:%i:%s.%f')", False
        # A time with a zone keeps its local time and drops the zone, as in Python.
        return f"to_char(TIMESTAMP '2000-01-01' + {q}::time, 'HH24:MI:SS.US')", False
    if wanted == "uuid" and actual == "uuid" and pg:
        return f"{q}::text", False
    return None  # JSON, and any other pairing: Python digests it


def _number_text(dialect: str, q: str, *, single: bool, floating: bool) -> str:
    """The decimal text of a number: a float's shortest exact digits, a decimal's own."""
    if dialect == "mariadb":  # MariaDB has no NaN or infinities
        if not floating:
            return f"CAST({q} AS CHAR)"
        value = f"CAST(CAST({q} AS FLOAT) AS DOUBLE)" if single else f"CAST({q} AS DOUBLE)"
        return f"CAST({value} AS CHAR)"
    if not floating:
        return f"{q}::text"
    return _pg_shortest(f"{q}::real::float8" if single else f"{q}::float8")


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


def _pg_digits(text: str) -> str:
    """SQL for `digest.number_text` of the decimal text `text`, in PostgreSQL; and NaN and
    the infinities by name."""
    unsigned = f"ltrim({text}, '-')"
    mantissa = f"split_part({unsigned}, 'e', 1)"
    exponent = f"coalesce(nullif(split_part({unsigned}, 'e', 2), ''), '0')::int"
    fraction = f"split_part({mantissa}, '.', 2)"
    leading = f"ltrim(split_part({mantissa}, '.', 1) || {fraction}, '0')"
    digits = f"rtrim({leading}, '0')"
    power = f"({exponent} - length({fraction}) + length({leading}) - length({digits}))"
    sign = f"CASE WHEN left({text}, 1) = '-' THEN '-' ELSE '' END"
    return (
        f"CASE {text} WHEN 'NaN' THEN 'nan' WHEN 'Infinity' THEN 'inf' WHEN '-Infinity' "
        f"THEN '-inf' ELSE CASE WHEN {digits} = '' THEN '0' "
        f"ELSE {sign} || {digits} || 'e' || {power}::text END END"
    )


def _mariadb_digits(text: str) -> str:
    """SQL for `digest.number_text` of the decimal text `text`, in MariaDB."""
    unsigned = f"TRIM(LEADING '-' FROM {text})"
    mantissa = f"SUBSTRING_INDEX({unsigned}, 'e', 1)"
    exponent = (
        f"IF(LOCATE('e', {unsigned}) > 0, CAST(SUBSTRING_INDEX({unsigned}, 'e', -1) AS SIGNED), 0)"
    )
    fraction = f"IF(LOCATE('.', {mantissa}) > 0, SUBSTRING_INDEX({mantissa}, '.', -1), '')"
    leading = f"TRIM(LEADING '0' FROM CONCAT(SUBSTRING_INDEX({mantissa}, '.', 1), {fraction}))"
    digits = f"TRIM(TRAILING '0' FROM {leading})"
    power = f"{exponent} - CHAR_LENGTH({fraction}) + CHAR_LENGTH({leading}) - CHAR_LENGTH({digits})"
    sign = f"IF(LEFT({text}, 1) = '-', '-', '')"
    return f"IF({digits} = '', '0', CONCAT({sign}, {digits}, 'e', {power}))"


def _pg_frame(q: str, token: str) -> str:
    return f"CASE WHEN {q} IS NULL THEN 'N' ELSE length({token})::text || ':' || {token} END"


def _mariadb_frame(q: str, token: str) -> str:
    text = f"CONVERT({token} USING utf8mb4)"
    return f"IF({q} IS NULL, 'N', CONCAT(CHAR_LENGTH({text}), ':', {text}))"


def _pg_row_hash(parts: Sequence[str]) -> str:
    row = " || ".join(f"({part})" for part in parts)
    # The first 16 hex digits as a signed 64-bit integer: sums agree modulo 2**64.
    return f"('x' || substr(md5({row}), 1, 16))::bit(64)::bigint"


def _mariadb_row_hash(parts: Sequence[str]) -> str:
    row = f"CONCAT({', '.join(parts)})"
    return f"CAST(CONV(SUBSTRING(MD5({row}), 1, 16), 16, 10) AS UNSIGNED)"


_FRAME: dict[str, Callable[[str, str], str]] = {
    "postgresql": _pg_frame,
    "mariadb": _mariadb_frame,
}
_ROW_HASH: dict[str, Callable[[Sequence[str]], str]] = {
    "postgresql": _pg_row_hash,
    "mariadb": _mariadb_row_hash,
}
