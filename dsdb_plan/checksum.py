"""Checksums of table contents: how each was made (`ChecksumMethod`) and what it says.

A table's (or a query's) checksum summarises its rows: a row count and an order-independent
sum of row hashes. Several methods make them, each cheapest somewhere: the database's own
hash of each row (PostgreSQL, MariaDB/MySQL), a hash of each row in Python (SQLite, and any
rows a database cannot hash), and the portable digest that is equal for the same data in
any database (`migrate/digest.py`). Two checksums are comparable only when their methods
are equal, so the method is part of the value: a `TableFingerprint` carries it as a
`ChecksumMethod`, and state records it as the method's stable name before the hash
(`pg3:…`), as every dsdb has written it.
"""

from __future__ import annotations

import abc
import enum
import marshal
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import sqlalchemy as sa
from xxhash import xxh3_128_intdigest

from dsdb_plan.errors import DsdbError


class ChecksumMethod(enum.Enum):
    """How a checksum was made. The values are the names state records: never change one;
    a new way of hashing is a new member."""

    #: PostgreSQL 14+: `hash_record_extended` of each row, summed in the database.
    POSTGRESQL_ROW_HASH = "pg3"
    #: PostgreSQL: MD5 of each row's text, summed in the database (queries; before 14).
    POSTGRESQL_ROW_MD5 = "pg1"
    #: MariaDB/MySQL: CHECKSUM TABLE, with a CRC32 of each row's value lengths.
    MYSQL_CHECKSUM_TABLE = "my3"
    #: MariaDB/MySQL: MD5 of a length-prefixed encoding of each row, summed in the database.
    MYSQL_ROW_MD5 = "my1"
    #: XXH3 of each row's `marshal` encoding, summed in Python (`RowDigest`).
    PYTHON_ROW_HASH = "py2"
    #: The portable digest, equal for the same data in any database (`migrate/digest.py`).
    PORTABLE = "portable3"
    #: Rows counted, content not read (the plan of a first copy, whose apply digests every
    #: row it copies): it rules out no change once the table may have changed.
    COUNTED = "counted"
    #: A method an earlier dsdb used and this one no longer makes: equal to nothing made now.
    RETIRED = "retired"


@dataclass(frozen=True)
class TableFingerprint:
    """One table's (or one subset's) row count and order-independent content checksum."""

    rows: int
    method: ChecksumMethod
    #: The hash, in hex; for a RETIRED method, the checksum as it was recorded.
    digest: str
    #: A cheap signal that every committed write to the table changes (PostgreSQL: its rows'
    #: transaction ids), or None. A cache key, not data: equality ignores it.
    token: str | None = field(default=None, compare=False)

    @property
    def checksum(self) -> str:
        """The checksum as state records it: the method's name, a colon, the hash."""
        if self.method is ChecksumMethod.RETIRED:
            return self.digest
        return f"{self.method.value}:{self.digest}"

    @property
    def method_name(self) -> str:
        """The recorded name of the method, for messages (a retired one's own name)."""
        if self.method is ChecksumMethod.RETIRED:
            return self.digest.split(":", 1)[0]
        return str(self.method.value)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"rows": self.rows, "checksum": self.checksum}
        if self.token is not None:
            data["token"] = self.token
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableFingerprint:
        rows = required_field(data, "rows", int)
        checksum = required_field(data, "checksum", str)
        token = data.get("token")
        if token is not None and not isinstance(token, str):
            raise DsdbError(f"malformed fingerprint: 'token' must be a string, not {token!r}")
        return cls(rows, *parse_checksum(checksum), token=token)


class RowDigest:
    """Count and order-independent checksum (`py2`) of rows hashed in Python: the sum of the
    128-bit XXH3 of each row's `marshal` encoding (format 2).

    Format 2 encodes the values SQLite returns (int, float, str, bytes, None) as type tag plus
    exact bytes, with neither the back-references nor the interning flags of later formats,
    so equal rows encode equally in any process; it is several times faster than any text.
    A row marshal cannot encode (values of other drivers: dates, decimals) is hashed by
    the marshal of its ascii(), a string, so it can never equal a row that marshal encodes.
    """

    def __init__(self) -> None:
        self._rows = 0
        self._total = 0

    def add(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Count and hash `rows`: driver values, `bytes` for binary."""
        self.add_total(len(rows), row_hash_sum(rows))

    def add_total(self, rows: int, total: int) -> None:
        """Add rows hashed earlier, as their count and `row_hash_sum`."""
        self._rows += rows
        self._total += total

    def result(self) -> TableFingerprint:
        return TableFingerprint(
            self._rows, ChecksumMethod.PYTHON_ROW_HASH, f"{self._total % 2**128:032x}"
        )


def row_hash_sum(rows: Sequence[tuple[Any, ...]]) -> int:
    """The sum of the rows' hashes in `RowDigest`, modulo 2**128."""
    try:
        encoded = list(map(marshal.dumps, rows, repeat(_MARSHAL_FORMAT)))
    except ValueError:
        encoded = list(map(_row_bytes, rows))
    return sum(map(xxh3_128_intdigest, encoded)) % 2**128


_MARSHAL_FORMAT = 2


def _row_bytes(row: tuple[Any, ...]) -> bytes:
    try:
        return marshal.dumps(row, _MARSHAL_FORMAT)
    except ValueError:
        # ascii() of a tuple quotes and escapes strings (NULL, '' and 'None' differ) and, unlike
        # repr(), does not depend on the Unicode version's idea of a printable character.
        return marshal.dumps(ascii(row), _MARSHAL_FORMAT)


def parse_checksum(text: str) -> tuple[ChecksumMethod, str]:
    """A recorded checksum's method and hash. One by a method this dsdb does not make (an
    older dsdb's) is RETIRED and keeps its text: it reads as a change once, never an error."""
    name, colon, digest = text.partition(":")
    try:
        method = ChecksumMethod(name)
    except ValueError:
        method = ChecksumMethod.RETIRED
    if method is ChecksumMethod.RETIRED or not colon:
        return ChecksumMethod.RETIRED, text
    return method, digest


def count_and_sum(
    conn: sa.Connection, rows: sa.FromClause, total: sa.ColumnElement[Any]
) -> tuple[int, int]:
    """The number of `rows` and the sum `total` over them (0 for none), in one scan."""
    query = sa.select(sa.func.count(), sa.func.coalesce(total, 0)).select_from(rows)
    count, checksum = conn.execute(query).one()
    return int(count), int(checksum)  # sums come back as Decimal: exact, however large


class DigestSQL(abc.ABC):
    """How one database writes the portable digest (`migrate/digest.py`) itself: the SQL
    of each value's canonical text, of a row's framing and of its hash. `q` is a quoted
    column; each text is NULL for NULL. Which forms a pairing of source and stored type
    takes is decided once, in `migrate/sql_digest.py`."""

    @abc.abstractmethod
    def session(self, conn: sa.Connection) -> AbstractContextManager[None]:
        """Fix the settings the text forms depend on, for the block."""

    @abc.abstractmethod
    def integer_text(self, q: str) -> str: ...

    @abc.abstractmethod
    def boolean_text(self, q: str, *, stored_as_boolean: bool) -> str:
        """true/false; a stored integer other than 0 and 1 as `?` and its text."""

    @abc.abstractmethod
    def float_text(self, q: str, *, single: bool) -> str:
        """The shortest digits that read back as the (single-precision) float."""

    @abc.abstractmethod
    def decimal_text(self, q: str) -> str: ...

    @abc.abstractmethod
    def binary_text(self, q: str) -> str: ...

    @abc.abstractmethod
    def date_text(self, q: str) -> str: ...

    @abc.abstractmethod
    def datetime_text(self, q: str, *, zoned: bool) -> str: ...

    @abc.abstractmethod
    def time_text(self, q: str) -> str: ...

    def uuid_text(self, q: str) -> str | None:
        """A stored UUID's text, or None where UUIDs are stored as text."""
        return None

    def frame(self, q: str, text: str, *, escaped: bool) -> str:
        """The value as it goes into a row: `text`, escaped if `escaped`; NULL as `\\N`.
        In standard SQL (`||`, `replace`, `chr`), which PostgreSQL and DuckDB speak."""
        text = f"({text})"
        if escaped:
            doubled = f"replace({text}, chr(92), chr(92) || chr(92))"
            text = f"replace({doubled}, chr(31), chr(92) || chr(31))"
        return f"CASE WHEN {q} IS NULL THEN chr(92) || 'N' ELSE {text} END"

    @abc.abstractmethod
    def row_hash(self, parts: Sequence[str]) -> str:
        """The row's hash: the first 64 bits of the MD5 of its framed values, joined."""


def required_field(data: Mapping[str, Any], key: str, kind: type) -> Any:
    value = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DsdbError(f"malformed fingerprint: {key!r} must be {kind.__name__}, not {value!r}")
    return value
