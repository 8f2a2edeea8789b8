"""Turn values read from one database into what another stores for the column's portable type.

Shared by restores (values read back from a backup) and migrations (values streamed from a
source database). Values arrive as the source driver gives them: a SQLite DATETIME column
holds text, a boolean 0/1, a JSON column its text. Into SQLite from SQLite, values go back
untouched (so `...:37` never becomes `...:37.000000`). Into another database, each value is
first made the Python value its portable type means (`canonical`), then adjusted to the
target's limits: MySQL has no zone-aware timestamp (aware values are stored as UTC) and no
NaN/Infinity; PostgreSQL takes naive values in zone-aware columns as UTC.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from dsdb_plan.dbschema import ColumnSchema, TableSchema
from dsdb_plan.engines import engine_for
from dsdb_plan.errors import DsdbError
from dsdb_plan.portable import FALSE_TEXTS, TRUE_TEXTS

Converter = Callable[[Any], Any]


def _to_int(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return value
    return value


def _to_float(value: Any) -> Any:
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _to_decimal(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))  # the shortest text that is this double, not its binary
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int | str):
        try:
            return Decimal(value.strip() if isinstance(value, str) else value)
        except InvalidOperation:
            return value
    return value


def _to_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_TEXTS:
            return True
        if text in FALSE_TEXTS:
            return False
    return value


def _to_date(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.date() if value.time() == dt.time() else value
    if isinstance(value, str):
        try:
            return _parse_iso(dt.date.fromisoformat, value)
        except ValueError:
            made = _to_datetime(value)
            # Text that is no datetime either stays as it is (recursing on it never ended).
            return _to_date(made) if isinstance(made, dt.datetime) else value
    return value


def _to_time(value: Any) -> Any:
    if isinstance(value, dt.timedelta) and dt.timedelta(0) <= value < dt.timedelta(days=1):
        return (dt.datetime.min + value).time()  # MySQL TIME comes back as a timedelta
    if isinstance(value, str):
        try:
            return _parse_iso(dt.time.fromisoformat, value)
        except ValueError:
            return value
    return value


def _to_datetime(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return _parse_iso(dt.datetime.fromisoformat, value)
        except ValueError:
            return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    return value


def _parse_iso(parse: Callable[[str], Any], text: str) -> Any:
    """`parse(text.strip())`, without copying the text when it has nothing to strip.

    The `fromisoformat` parsers refuse surrounding whitespace, so a first try on the text
    as it is gives the same value whenever it succeeds (SQLite's text dates: nearly always).
    """
    try:
        return parse(text)
    except ValueError:
        return parse(text.strip())


def _to_json_text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value  # JSON columns are backed up as their JSON text
    return json.dumps(value, ensure_ascii=False)


def _to_text(value: Any) -> Any:
    if value is None or isinstance(value, str | bytes):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _to_binary(value: Any) -> Any:
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def _to_uuid_text(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def _as_stored(value: Any) -> Any:
    return bytes(value) if isinstance(value, bytearray | memoryview) else value


_CANONICAL: dict[str, Converter] = {
    "smallint": _to_int,
    "integer": _to_int,
    "bigint": _to_int,
    "boolean": _to_bool,
    "float": _to_float,
    "double": _to_float,
    "decimal": _to_decimal,
    "varchar": _to_text,
    "text": _to_text,
    "binary": _to_binary,
    "date": _to_date,
    "time": _to_time,
    "datetime": _to_datetime,
    "json": _to_json_text,
    "uuid": _to_uuid_text,
    "typeless": _as_stored,  # each value keeps its storage class: there is nothing to mean
}


def canonical(value: Any, column: ColumnSchema) -> Any:
    """The Python value `value` means in a column of this portable type.

    Text that does not parse is left as it is, for the target database to accept or reject.
    """
    if value is None:
        return None
    return _CANONICAL[column.type](value)


def _sqlite_storage(value: Any) -> Any:
    """A typed value as SQLite stores it (the conventions SQLAlchemy and pandas read)."""
    if value is None or isinstance(value, int | float | str | bytes):
        return int(value) if isinstance(value, bool) else value
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Decimal) and _whole_int64(value):
        return int(value)  # '12.000' would pass through a double, losing digits past 15
    return str(value)  # Decimal as text: SQLite's NUMERIC affinity keeps what it can


def _whole_int64(value: Decimal) -> bool:
    return value.is_finite() and value == value.to_integral_value() and -(2**63) <= value < 2**63


def _utc_naive(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, dt.time) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    return value


def _zoned(value: Any, column: ColumnSchema) -> Any:
    """Fit a datetime to the column: naive in a zoned column means UTC, and vice versa."""
    if not isinstance(value, dt.datetime):
        return value
    if column.timezone:
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    return _utc_naive(value)


def column_converter(
    column: ColumnSchema, table: str, source: str, target: str
) -> Converter | None:
    """The conversion of one column's non-null values, or None when they pass unchanged.

    Built once per column, with the column's `canonical` step looked up here rather than per
    value: copies call it for every value that is not already of its column's Python type.
    """
    engine = engine_for(target)
    untyped = not engine.capabilities.typed_columns
    if untyped and source == target:
        return None  # SQLite into SQLite: values go back untouched
    # An unknown type fails on its first value, as `canonical` does.
    canon: Converter = _CANONICAL.get(column.type) or functools.partial(canonical, column=column)
    if untyped:

        def to_sqlite(value: Any) -> Any:
            return _sqlite_storage(canon(value))

        return to_sqlite
    if not engine.capabilities.zone_aware_timestamps:  # MySQL/MariaDB
        finite_only = not engine.capabilities.stores_non_finite_floats

        def to_mysql(value: Any) -> Any:
            value = _utc_naive(canon(value))
            if finite_only and isinstance(value, float | Decimal) and not math.isfinite(value):
                raise DsdbError(
                    f"table {table!r}, column {column.name!r}: {engine.name} cannot store {value}"
                )
            return value

        return to_mysql
    zoned = column.timezone

    def to_postgresql(value: Any) -> Any:
        value = canon(value)
        if not isinstance(value, dt.datetime):
            return value
        if zoned:  # `_zoned`, inlined: this runs for every timestamp copied
            return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return _utc_naive(value)

    return to_postgresql


def row_converter(
    table: TableSchema, source_dialect: str, target_dialect: str
) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A function making one backed-up row ready for `target_dialect`."""
    converters = [
        column_converter(column, table.name, source_dialect, target_dialect)
        for column in table.columns
    ]
    if all(converter is None for converter in converters):
        return tuple

    def convert(row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            value if converter is None or value is None else converter(value)
            for value, converter in zip(row, converters, strict=True)
        )

    return convert
