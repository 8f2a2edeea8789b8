"""The portable digest of a set of rows: equal for the same data in any database, any order.

Every value is written as the canonical text of the Python value its portable type means
(`values.canonical`, by the source column's type on both sides), in a form every target
can hold faithfully and that PostgreSQL and MariaDB can also write themselves
(`sql_digest.py`), so a digest is the same whichever side computed it:

- integers in decimal; booleans as true/false;
- numbers (floats and decimals) as plain decimals without trailing zeros: 1.50, 1.5 and
  15e-1 are all 1.5 (a scale is not data: MariaDB and DuckDB keep even a decimal declared
  without one at a fixed scale, 7 as 7.000..., so a digest that saw scale could match no
  copy into them; the scale a PostgreSQL numeric without one lands is each copy path's to
  get right, and the tests compare its text); zero, -0.0 included, as 0; NaN and the
  infinities as nan, inf, -inf. A float is written with the shortest digits that read
  back as the same double; a single-precision float is rounded to single precision first,
  however the driver returned it;
- datetimes in UTC, without zone: MariaDB stores an aware value as naive UTC and a naive
  value in a zone-aware column means UTC (the convention `values.py` copies with); times
  without a zone;
- text as is, binary as lower-case hex, JSON parsed and written with sorted keys
  (PostgreSQL's jsonb reorders keys), UUIDs in lower case;
- a value of a typeless column (SQLite's, which keeps each value's storage class) as its
  class and its text, as the types above write it (`integer:1`, `real:1.5`, `text:1`,
  `blob:31`), so 1, 1.0 and '1' differ.

A value that does not parse as its type is written as `?` and its `repr`, so it only matches
itself; so is a value of a class that a copy changed on the way (a number read as text, text
read as a number: `_CHANGED`), which the values as read on each side show. A row is its
values joined by the unit separator (U+001F), NULL written as a backslash and `N`. In text a
backslash is doubled and the separator follows a backslash, so no text can pass for a
boundary or a NULL (no other form holds either character); each value is written once, which
a length prefix would not let the databases do. The row's hash is the first 64 bits of the
MD5 of its text in UTF-8, and the digest is the row count and the sum of the row hashes
modulo 2**64: equal for equal multisets of rows. MD5 because both servers have it built in;
it guards against accidents, not adversaries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import struct
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import partial
from itertools import compress, count, repeat
from operator import is_, itemgetter, methodcaller
from types import NoneType
from typing import Any

from dsdb_plan.checksum import ChecksumMethod, TableFingerprint
from dsdb_plan.dbschema import ColumnSchema, TableSchema
from dsdb_plan.values import canonical

MODULUS = 2**64
SEPARATOR = "\x1f"
NULL = "\\N"
#: Types whose text may hold a backslash or the separator: escaped in a row.
ESCAPED_TYPES = frozenset({"varchar", "text", "typeless"})

Token = Callable[[Any], str]
#: The texts of a list of values of one class, or ValueError if one has none.
ColumnTexts = Callable[[list[Any]], list[str]]


class SubsetDigest:
    """The running count and sum of portable row hashes; feed it rows with `add`."""

    def __init__(self, schema: TableSchema, columns: Sequence[str]) -> None:
        self.framers = [_column_framer(schema.column(name)) for name in columns]
        self.rows = 0
        self.total = 0

    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        # Column by column, then row by row; each step maps a C function over a whole list.
        framed = [
            frame(values)
            for frame, values in zip(self.framers, zip(*rows, strict=True), strict=True)
        ]
        texts = map(SEPARATOR.join, zip(*framed, strict=True))
        digests = map(_DIGEST, map(hashlib.md5, map(_UTF8, texts)))
        self.total = (self.total + sum(map(int.from_bytes, map(_FIRST_64_BITS, digests)))) % MODULUS
        self.rows += len(rows)

    def add_total(self, rows: int, total: int) -> None:
        """Add rows digested elsewhere (in the database) as their count and hash sum."""
        self.rows += rows
        self.total = (self.total + total) % MODULUS

    def result(self) -> TableFingerprint:
        return TableFingerprint(self.rows, ChecksumMethod.PORTABLE, f"{self.total:016x}")


_UTF8 = methodcaller("encode", "utf-8", "surrogatepass")
_DIGEST = methodcaller("digest")
_FIRST_64_BITS = itemgetter(slice(0, 8))


def _column_framer(column: ColumnSchema) -> Callable[[Sequence[Any]], list[str]]:
    """The values of one column as they go into rows, as `_framer` writes each.

    The values of each Python class with a direct path (`_FAST`) are written together by
    it; values of other classes, or of a class whose path refuses one of them, are framed
    one by one.
    """
    frame = _framer(column)
    fast = _FAST.get(column.type, {})
    escaped = column.type in ESCAPED_TYPES

    def write(values: list[Any]) -> list[str]:
        write_all = fast.get(type(values[0]))
        if write_all is None:
            return list(map(frame, values))
        try:
            texts = write_all(values)
        except ValueError:
            return list(map(frame, values))
        return _escape_all(texts) if escaped else texts

    def frame_column(values: Sequence[Any]) -> list[str]:
        classes = list(map(type, values))
        present = set(classes)
        if len(present) == 1 and classes[0] is not NoneType:
            return write(list(values))
        framed = [NULL] * len(values)
        present.discard(NoneType)
        for cls in present:
            where = list(compress(count(), map(is_, classes, repeat(cls))))
            for index, text in zip(where, write([values[i] for i in where]), strict=True):
                framed[index] = text
        return framed

    return frame_column


def _escape_all(texts: list[str]) -> list[str]:
    # str.replace in C, over the whole column: most texts hold neither character.
    texts = list(map(str.replace, texts, repeat("\\"), repeat("\\\\")))
    return list(map(str.replace, texts, repeat(SEPARATOR), repeat("\\" + SEPARATOR)))


def _framer(column: ColumnSchema) -> Token:
    """A value of `column` as it goes into a row: its text, escaped if text; NULL as `\\N`."""
    form = _FORMS[column.type]
    escaped = column.type in ESCAPED_TYPES
    changed = _CHANGED.get(column.type, ())

    def frame(value: Any) -> str:
        if value is None:
            return NULL
        made = value if isinstance(value, changed) else canonical(value, column)
        text = form(made, column)
        if text is None:
            text = f"?{made!r}"  # matches only itself
        return _escape_all([text])[0] if escaped else text

    return frame


#: Per type, the Python classes no driver reads its values as, but which `canonical` would
#: turn into one: text into a number, a number or a truth value into text. Such a value was
#: changed on its way (1 into '1'), so it is digested as read: as `?` and its repr, which
#: matches only itself, and a copy that changed a value's class fails verification.
_NUMBER_FROM_TEXT = (str,)
_TEXT_FROM_OTHER = (int, float, Decimal, bytes)
_CHANGED: dict[str, tuple[type, ...]] = {
    "smallint": _NUMBER_FROM_TEXT,
    "integer": _NUMBER_FROM_TEXT,
    "bigint": _NUMBER_FROM_TEXT,
    "float": _NUMBER_FROM_TEXT,
    "double": _NUMBER_FROM_TEXT,
    "decimal": _NUMBER_FROM_TEXT,
    "varchar": _TEXT_FROM_OTHER,
    "text": _TEXT_FROM_OTHER,
}


def number_text(text: str) -> str:
    """The plain decimal `text` means, without trailing zeros (`-1.50` -> `-1.5`, `1.5e-07`
    -> `0.00000015`, `1E+2` -> `100`, `-0.0` -> `0`)."""
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("0", "-0") else text


def _int(value: Any, column: ColumnSchema) -> str | None:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _bool(value: Any, column: ColumnSchema) -> str | None:
    return ("true" if value else "false") if isinstance(value, bool) else None


def float_text(value: float) -> str:
    """A double as digests write it."""
    # repr is the shortest text that reads back as the same double, and writes nan, inf
    # and -inf as wanted; only an exponent or a trailing ".0" needs changing.
    text = float.__repr__(value)
    if "e" in text:
        return number_text(text)
    if text.endswith(".0"):
        return "0" if text == "-0.0" else text[:-2]
    return text


def _float(value: Any, column: ColumnSchema) -> str | None:
    if not isinstance(value, float):
        return None
    if column.type == "float" and math.isfinite(value):
        value = struct.unpack("f", struct.pack("f", value))[0]  # single precision, however read
    return float_text(value)


def _decimal_text(value: Decimal) -> str:
    if value.is_nan():
        return "nan"
    if value.is_infinite():
        return "inf" if value > 0 else "-inf"
    return number_text(str(value))


def _decimal(value: Any, column: ColumnSchema) -> str | None:
    return _decimal_text(value) if isinstance(value, Decimal) else None


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


def _datetime_text(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        offset = value.utcoffset()  # UTC is the wall time less its offset (astimezone, cheaper)
        value = (value - offset if offset else value).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


def _datetime(value: Any, column: ColumnSchema) -> str | None:
    return _datetime_text(value) if isinstance(value, dt.datetime) else None


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


def _typeless(value: Any, column: ColumnSchema) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return f"integer:{value}"
    if isinstance(value, float):
        return f"real:{float_text(value)}"
    if isinstance(value, str):
        return f"text:{value}"
    if isinstance(value, bytes):
        return f"blob:{value.hex()}"
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
    "typeless": _typeless,
}


def _each(write: Callable[[Any], str]) -> ColumnTexts:
    return partial(_mapped, write)


def _mapped(write: Callable[[Any], str], values: list[Any]) -> list[str]:
    return list(map(write, values))


def _labelled(label: str, write: ColumnTexts, values: list[Any]) -> list[str]:
    return [label + text for text in write(values)]


def _bools_of_ints(values: list[int]) -> list[str]:
    if not set(values) <= {0, 1}:
        raise ValueError("not a boolean")
    return list(map(_BOOL_TEXT.__getitem__, values))


_BOOL_TEXT = ("false", "true")


def _floats_text(values: list[float]) -> list[str]:
    texts = list(map(float.__repr__, values))
    # repr is final unless it has an exponent or a trailing ".0" (`float_text`): one look
    # at the column's joined text, in C, finds whether any does.
    joined = "\x00".join(texts) + "\x00"
    if "e" in joined or ".0\x00" in joined:
        return list(map(float_text, values))
    return texts


def _dates_of_text(values: list[str]) -> list[str]:
    return list(map(dt.date.isoformat, map(dt.date.fromisoformat, values)))


def _datetimes_of_text(values: list[str]) -> list[str]:
    parsed = list(map(dt.datetime.fromisoformat, values))  # refuses any that is no datetime
    # SQLite's usual layouts, YYYY-MM-DD HH:MM:SS.ffffff and the same in UTC (+00:00), are
    # canonical but for the "T" and the zone: cut, not rebuilt (most of the time here).
    if set(map(len, values)) <= {26, 32} and set(map(_LAYOUT, values)) <= _CANONICAL_LAYOUTS:
        dates, times = map(_DATE_PART, values), map(_TIME_PART, values)
        return list(map("T".join, zip(dates, times, strict=True)))
    return list(map(_datetime_text, parsed))


_LAYOUT = itemgetter(4, 7, 13, 16, 19, slice(26, None))
_CANONICAL_LAYOUTS = {("-", "-", ":", ":", ".", ""), ("-", "-", ":", ":", ".", "+00:00")}
_DATE_PART = itemgetter(slice(0, 10))
_TIME_PART = itemgetter(slice(11, 26))

# The Python classes values of a type usually arrive as (SQLite's text dates and 0/1
# booleans included), each with how a list of them is written: what `_framer` writes each
# value, only sooner. Single-precision floats have none: they are rounded first.
_FAST: dict[str, dict[type, ColumnTexts]] = {
    "smallint": {int: _each(str)},
    "integer": {int: _each(str)},
    "bigint": {int: _each(str)},
    "boolean": {bool: _bools_of_ints, int: _bools_of_ints},
    "double": {float: _floats_text},
    "decimal": {Decimal: _each(_decimal_text), float: _floats_text, int: _each(str)},
    "varchar": {str: list},
    "text": {str: list},
    "binary": {bytes: _each(bytes.hex)},
    "date": {dt.date: _each(dt.date.isoformat), str: _dates_of_text},
    "datetime": {dt.datetime: _each(_datetime_text), str: _datetimes_of_text},
    # As `_typeless` writes each value: its storage class, then its text.
    "typeless": {
        int: partial(_labelled, "integer:", _each(str)),
        float: partial(_labelled, "real:", _floats_text),
        str: partial(_labelled, "text:", list),
        bytes: partial(_labelled, "blob:", _each(bytes.hex)),
    },
}
