"""Verify a copied table: the target holds exactly the source subset (issue 4, item 8).

The fingerprints of `fingerprint.py` hash each database's own text form of a row, so a
PostgreSQL checksum never equals a SQLite one. Here every value is first made the Python
value its portable type means (`values.canonical`, by the source column's type on both
sides), then written in one canonical text form that every target can hold faithfully:

- integers in decimal; booleans as true/false;
- doubles by `repr` (shortest exact text), -0.0 as 0.0 (SQLite stores it so), NaN and the
  infinities by name; single-precision floats rounded to single precision first, however
  the driver returned them;
- decimals normalised: 1.50, 1.5 and 1.500000 are one value (a scale is not data);
- datetimes in UTC, without zone: MariaDB stores an aware value as naive UTC and a naive
  value in a zone-aware column means UTC (the convention `values.py` copies with); times
  without a zone unless the column has one;
- text as is, binary as hex, JSON parsed and written with sorted keys (PostgreSQL's jsonb
  reorders keys), UUIDs in lower case.

A value that does not parse as its type is kept as its `repr`, so it only matches itself.
Each row is hashed (BLAKE2b, 128 bits) and the hashes summed modulo 2**128: equal for equal
multisets of rows in any order. Rows are streamed in bounded chunks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import struct
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from dsdb_plan.dbschema import ColumnSchema, TableSchema
from dsdb_plan.fingerprint import TableFingerprint
from dsdb_plan.migrate.subset import TableSelection, select_subset
from dsdb_plan.values import canonical, row_converter

PREFIX = "portable1:"
_CHUNK_ROWS = 5_000
#: Source keys looked up in the target per query: bounded memory, and well under every
#: database's limit on bound parameters.
_KEY_BATCH = 1_000


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of comparing one target table with its source subset."""

    ok: bool
    source: TableFingerprint
    target: TableFingerprint
    message: str


def subset_digest(conn: sa.Connection, selection: TableSelection) -> TableFingerprint:
    """The portable fingerprint of the source rows `selection` copies (its columns, in order)."""
    digest = SubsetDigest(selection.schema, selection.columns)
    for chunk in _chunks(conn, select_subset(selection)):
        digest.add(chunk)
    return digest.result()


def verify_table(
    source_conn: sa.Connection,
    selection: TableSelection,
    target_conn: sa.Connection,
    target_table: str,
    *,
    exact: bool,
    source: TableFingerprint | None = None,
) -> VerifyResult:
    """Compare `target_table` with the source subset of `selection`, column by column name.

    exact=True (replace, mirror): the whole target table must equal the subset.
    exact=False (append, upsert): only the target rows whose key is in the subset are
    compared, so rows the target holds besides them are ignored. Without a key, exact.
    `source` is the subset's digest when the caller already has it (taken while copying).
    """
    if source is None:
        source = subset_digest(source_conn, selection)
    missing = _missing_target(target_conn, target_table, selection.columns)
    if missing:
        return VerifyResult(False, source, TableFingerprint(0, PREFIX), missing)
    target = sa.table(target_table, *(sa.column(name) for name in selection.columns))
    if exact or not selection.key:
        digest = SubsetDigest(selection.schema, selection.columns)
        for chunk in _chunks(target_conn, sa.select(*target.c)):
            digest.add(chunk)
        return _result(source, digest.result(), target_table, None)
    found = _keyed_digest(source_conn, selection, target_conn, target)
    return _result(source, found, target_table, selection.key)


def _result(
    source: TableFingerprint, target: TableFingerprint, name: str, key: Sequence[str] | None
) -> VerifyResult:
    ok, message = _judge(source, target, name, key)
    return VerifyResult(ok, source, target, message)


def _judge(
    source: TableFingerprint, target: TableFingerprint, name: str, key: Sequence[str] | None
) -> tuple[bool, str]:
    """Whether the two agree, and why not in words."""
    rows = _rows(source.rows)
    if source == target:
        return True, f"target {name} matches the source subset ({rows})"
    if key is None:
        if target.rows < source.rows:
            return False, f"target {name} has {target.rows:,} of {rows}; content differs"
        if target.rows > source.rows:
            extra = target.rows - source.rows
            return False, (
                f"target {name} has {target.rows:,} rows, {extra:,} more than the {rows} "
                "of the source subset"
            )
        return False, f"target {name} has all {rows} but content differs"
    by = ", ".join(key)
    if target.rows < source.rows:
        return False, (
            f"target {name} has {target.rows:,} of {rows} (matched by {by}); content differs"
        )
    if target.rows > source.rows:
        return False, (
            f"target {name} has {target.rows:,} rows for the {rows} of the source subset "
            f"(matched by {by}): duplicate keys; content differs"
        )
    return False, f"target {name} has all {rows} (matched by {by}) but content differs"


def _missing_target(conn: sa.Connection, name: str, columns: Sequence[str]) -> str | None:
    inspector = sa.inspect(conn)
    if not inspector.has_table(name):
        return f"target table {name} does not exist"
    present = {column["name"] for column in inspector.get_columns(name)}
    if conn.dialect.name in ("mysql", "mariadb"):
        present = {column.replace("``", "`") for column in present}  # see dbschema
    lacking = [column for column in columns if column not in present]
    if lacking:
        return f"target {name} has no column {', '.join(repr(c) for c in lacking)}"
    return None


def _keyed_digest(
    source_conn: sa.Connection,
    selection: TableSelection,
    target_conn: sa.Connection,
    target: sa.TableClause,
) -> TableFingerprint:
    """The digest of the target rows whose key is among the source subset's keys."""
    key_schema = TableSchema(
        selection.name, tuple(selection.schema.column(name) for name in selection.key)
    )
    # Keys are looked up as the target stores them (SQLite keeps dates as text, ...).
    convert = row_converter(key_schema, source_conn.dialect.name, target_conn.dialect.name)
    keys = sa.select(*(selection.source.c[name] for name in selection.key))
    if selection.where is not None:
        keys = keys.where(selection.where)
    digest = SubsetDigest(selection.schema, selection.columns)
    for chunk in _chunks(source_conn, keys, _KEY_BATCH):
        values = [convert(row) for row in chunk]
        if len(selection.key) == 1:
            condition = target.c[selection.key[0]].in_([value[0] for value in values])
        else:
            condition = sa.tuple_(*(target.c[name] for name in selection.key)).in_(values)
        for rows in _chunks(target_conn, sa.select(*target.c).where(condition)):
            digest.add(rows)
    return digest.result()


class SubsetDigest:
    """The running count and sum of portable row hashes; feed it rows with `add`."""

    def __init__(self, schema: TableSchema, columns: Sequence[str]) -> None:
        self.tokens = [_tokenizer(schema.column(name)) for name in columns]
        self.rows = 0
        self.total = 0

    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        tokens = self.tokens
        blake2b = hashlib.blake2b
        for row in rows:
            text = json.dumps(
                [None if v is None else t(v) for t, v in zip(tokens, row, strict=True)],
                ensure_ascii=True,
            )
            self.total += int.from_bytes(blake2b(text.encode(), digest_size=16).digest())
        self.rows += len(rows)

    def result(self) -> TableFingerprint:
        return TableFingerprint(self.rows, f"{PREFIX}{self.total % 2**128:032x}")


Token = Callable[[Any], str]


def _tokenizer(column: ColumnSchema) -> Token:
    """The canonical text of a non-null value of `column`."""
    form = _FORMS[column.type]

    def token(value: Any) -> str:
        made = canonical(value, column)
        text = form(made, column)
        return text if text is not None else f"?{made!r}"

    return token


def _int(value: Any, column: ColumnSchema) -> str | None:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _bool(value: Any, column: ColumnSchema) -> str | None:
    return ("true" if value else "false") if isinstance(value, bool) else None


def _float(value: Any, column: ColumnSchema) -> str | None:
    if not isinstance(value, float):
        return None
    if math.isnan(value):
        return "nan"
    if column.type == "float" and math.isfinite(value):
        value = struct.unpack("f", struct.pack("f", value))[0]  # single precision, however read
    return repr(value + 0.0)  # -0.0 + 0.0 is 0.0


def _decimal(value: Any, column: ColumnSchema) -> str | None:
    if not isinstance(value, Decimal):
        return None
    if not value.is_finite():
        return str(value).lower().lstrip("+")
    if value.is_zero():
        return "0"
    return format(value.normalize(), "f")


def _text(value: Any, column: ColumnSchema) -> str | None:
    return value if isinstance(value, str) else None


def _binary(value: Any, column: ColumnSchema) -> str | None:
    return bytes.hex(value) if isinstance(value, bytes) else None


def _date(value: Any, column: ColumnSchema) -> str | None:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    return None


def _time(value: Any, column: ColumnSchema) -> str | None:
    if not isinstance(value, dt.time):
        return None
    # MySQL's TIME has no zone and values.py drops it on the way: compare without it.
    return value.replace(tzinfo=None).isoformat(timespec="microseconds")


def _datetime(value: Any, column: ColumnSchema) -> str | None:
    if not isinstance(value, dt.datetime):
        return None
    utc: dt.datetime = value
    if utc.tzinfo is not None:
        utc = utc.astimezone(dt.UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds")


def _json(value: Any, column: ColumnSchema) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _uuid(value: Any, column: ColumnSchema) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


_FORMS: dict[str, Callable[[Any, ColumnSchema], str | None]] = {
    "smallint": _int,
    "integer": _int,
    "bigint": _int,
    "boolean": _bool,
    "float": _float,
    "double": _float,
    "decimal": _decimal,
    "varchar": _text,
    "text": _text,
    "binary": _binary,
    "date": _date,
    "time": _time,
    "datetime": _datetime,
    "json": _json,
    "uuid": _uuid,
}


def _chunks(
    conn: sa.Connection, query: sa.Select[Any], size: int = _CHUNK_ROWS
) -> Iterator[Sequence[tuple[Any, ...]]]:
    """The query's rows as plain tuples, `size` at a time.

    Its columns must be untyped (`PortableType`, `sa.column`): raw driver values, which
    SQLAlchemy's processors would otherwise parse (SQLite's text dates).
    """
    if conn.dialect.name == "sqlite":
        # pysqlite steps the statement as rows are fetched: its cursor is bounded already.
        cursor = conn.execute(query).cursor
        while chunk := cursor.fetchmany(size):
            yield [tuple(map(_plain, row)) for row in chunk]
        return
    # Elsewhere a server-side cursor keeps memory bounded (yield_per implies stream_results).
    result = conn.execution_options(yield_per=size).execute(query)
    for part in result.partitions():
        yield [tuple(map(_plain, row)) for row in part]


def _plain(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview | bytearray) else value


def _rows(count: int) -> str:
    return "1 row" if count == 1 else f"{count:,} rows"
