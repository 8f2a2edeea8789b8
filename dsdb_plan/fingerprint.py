"""Fingerprints: exact summaries of table contents that are cheap to recompute when nothing changed.

A table's fingerprint is its row count and an order-independent content checksum: the sum of a
per-row hash modulo 2**64 (in-database) or 2**128 (in Python). A sum, not an XOR, so duplicate
rows add up instead of cancelling, and deleting then re-inserting an identical row restores the
original value. Any change to any value changes the row's hash, so an update in place with the
same row count is noticed (with the probability of a hash collision: 2**-64 or less, except
2**-32 for MariaDB/MySQL's CHECKSUM TABLE).

How each database is read (issue 3, item 2):

- PostgreSQL and MariaDB/MySQL compute count and checksum in the database; no row crosses the
  wire. Whole tables by the cheapest exact method each has (`hash_record_extended` on
  PostgreSQL 14+, CHECKSUM TABLE on MariaDB/MySQL); subsets (`fingerprint_query`) by an MD5
  of each row's text. PostgreSQL's statistics counters are flushed lazily, so they could only
  ever say "maybe changed" and cannot spare the scan; they are not used. Each PostgreSQL
  table's fingerprint carries a `token` instead, from the ids of the transactions that wrote
  its rows: when a `previous` fingerprint's token is still the table's, its checksum is
  reused after a scan of those ids alone, about half the cost of hashing the content.
- SQLite file databases get a `token` from the file's identity, size, times and header bytes
  (plus the WAL and its index when the WAL holds frames). When a `previous` fingerprint carries
  the same token, its tables are returned without reading any data.
- Everything else (and SQLite when the token changed) streams rows in bounded chunks and hashes
  each row in Python (`RowDigest`). A reader that goes through every row anyway, as a backup
  does, hashes the rows it reads with `FingerprintWhileReading` instead of reading them twice.

Checksums start with the method that made them (`pg3:`, `my3:`, `py2:`, ...): two checksums
are only comparable when their methods are equal, which is so for the same database and the
same kind of fingerprint (whole table or query). A recorded checksum by an older method reads
as a change once (`describe_changes` says so).
"""

from __future__ import annotations

import hashlib
import marshal
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine.interfaces import ReflectedColumn
from xxhash import xxh3_128_intdigest

from dsdb_plan.dbschema import quote_for_driver
from dsdb_plan.engines import Engine, known_engine
from dsdb_plan.engines.mysql import ENGINE as MYSQL
from dsdb_plan.engines.postgresql import ENGINE as POSTGRESQL
from dsdb_plan.errors import DsdbError, driver_message

_CHUNK_ROWS = 10_000
#: The method of a fingerprint that holds a row count and no content (`count_tables`).
COUNTED = "counted"
_TOKEN_VERSION = b"dsdb-sqlite-token-1"
# The bytes of each file that change with its content: the whole 100-byte database header
# (file change counter, schema cookie, page count), the WAL header (checkpoint sequence and
# salts, renewed whenever the WAL restarts) and the first copy of the WAL-index header (mxFrame
# and the checksum of the last committed frame, which move with every commit in WAL mode).
# https://www.sqlite.org/fileformat2.html#the_database_header, #walformat, walindexformat.html
_SQLITE_FILES = (("", 100), ("-wal", 32), ("-shm", 48))


@dataclass(frozen=True)
class TableFingerprint:
    """One table's (or one subset's) row count and order-independent content checksum."""

    rows: int
    checksum: str
    #: A cheap signal that every committed write to the table changes (PostgreSQL: its rows'
    #: transaction ids), or None. A cache key, not data: equality ignores it.
    token: str | None = field(default=None, compare=False)

    @property
    def method(self) -> str:
        """How the checksum was made (`pg3`, `py2`, ...)."""
        return self.checksum.split(":", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"rows": self.rows, "checksum": self.checksum}
        if self.token is not None:
            data["token"] = self.token
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableFingerprint:
        rows, checksum = _required(data, "rows", int), _required(data, "checksum", str)
        token = data.get("token")
        if token is not None and not isinstance(token, str):
            raise DsdbError(f"malformed fingerprint: 'token' must be a string, not {token!r}")
        return cls(rows=rows, checksum=checksum, token=token)


@dataclass(frozen=True)
class Fingerprint:
    """The fingerprints of a set of tables, with the token that lets an unchanged file skip work.

    `token` is None unless the database offers an exact, cheap change signal (SQLite files).
    It is a cache key, not data, so equality compares the tables only: the same content read
    twice is equal even when a checkpoint or a no-op write moved the token.
    """

    tables: dict[str, TableFingerprint]
    token: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        tables = {name: self.tables[name].to_dict() for name in sorted(self.tables)}
        return {"tables": tables, "token": self.token}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fingerprint:
        tables = _required(data, "tables", dict)
        token = data.get("token")
        if token is not None and not isinstance(token, str):
            raise DsdbError(f"malformed fingerprint: 'token' must be a string, not {token!r}")
        return cls(
            tables={str(name): TableFingerprint.from_dict(t) for name, t in tables.items()},
            token=token,
        )


def fingerprint_database(
    engine: sa.Engine,
    tables: list[str] | None = None,
    previous: Fingerprint | None = None,
) -> Fingerprint:
    """Fingerprint `tables` (None: every table) of the database behind `engine`.

    With a `previous` fingerprint whose token matches and which covers the requested tables,
    its fingerprints are returned without reading any data. Unknown tables raise DsdbError.
    """
    # The token is taken before any data is read: a write that lands after it but before the
    # read yields new data under an old token, and the next run, seeing a newer token, rereads.
    # Taken after, it could pair old data with the new token and hide that write for good.
    token = change_token(engine)
    reused = _reused(engine, tables, previous, token)
    if reused is not None:
        return reused
    with _reading(engine) as conn:
        inspector = sa.inspect(conn)
        names = _checked_names(inspector.get_table_names(), tables)
        columns = inspector.get_multi_columns(filter_names=names) if names else {}
        engine_rules = known_engine(conn.dialect)
        result = {}
        earlier = previous.tables if previous is not None else {}
        for (_schema, name), cols in sorted(columns.items(), key=lambda item: item[0][1]):
            if engine_rules is not None:  # names as written (MySQL's come back escaped)
                cols = [{**c, "name": engine_rules.reflected_name(c["name"])} for c in cols]
            result[name] = _fingerprint_table(conn, name, cols, earlier.get(name))
    return Fingerprint(result, token)


class FingerprintWhileReading:
    """The fingerprint of tables a caller reads whole anyway, with as little reading of its own
    as possible; equal to what `fingerprint_database` returns for the same data.

    Made before the caller reads (the token is taken then). `previous` is reused as
    `fingerprint_database` would. Otherwise SQLite rows are hashed as the caller hands them
    to `add`, so the fingerprint is of the very rows it read; other databases are
    fingerprinted at once, in the database, before the caller reads.
    """

    def __init__(
        self, engine: sa.Engine, tables: list[str] | None, previous: Fingerprint | None = None
    ) -> None:
        self._token = change_token(engine)
        self._known = _reused(engine, tables, previous, self._token)
        self._digests: dict[str, RowDigest] | None = None
        if self._known is None:
            if _by_engine(engine.dialect, _TABLES_IN_DATABASE) is None:  # SQLite
                self._digests = {}
            else:
                self._known = fingerprint_database(engine, tables)

    def add(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows of `table`, every column in table order, as the SQLite driver returns them."""
        if self._digests is not None:
            self._digests.setdefault(table, RowDigest()).add(rows)

    def result(self, tables: Iterable[str]) -> Fingerprint:
        """The fingerprint, once the caller has read every row of `tables`."""
        if self._digests is None:
            assert self._known is not None
            return self._known
        digests = self._digests
        return Fingerprint(
            {name: digests.get(name, RowDigest()).result() for name in sorted(tables)},
            self._token,
        )


def fingerprint_query(conn: sa.Connection, query: sa.Select[Any], label: str) -> TableFingerprint:
    """The fingerprint of a query's rows by the database's own method for any rows (`pg1`,
    `my1`, or `py2` in Python), in the connection's current transaction (`label` names it
    in errors).

    Two results compare only within one dialect: the same values typed differently differ.
    Where tables are hashed in Python too (SQLite), a query of a whole table's columns, in
    table order, fingerprints as `fingerprint_database` fingerprints the table.
    """
    with _formatting(conn):
        return _fingerprint(conn, query.subquery("q"), label)


def count_tables(engine: sa.Engine, tables: list[str]) -> Fingerprint:
    """The row count of each of `tables`, checksummed as `COUNTED` (no content read), under
    the token taken before counting: a first copy needs no more to plan (its apply digests
    every row it copies), and while the token holds, the next plan reuses it as is."""
    token = change_token(engine)
    counted: dict[str, TableFingerprint] = {}
    with engine.connect() as conn:
        for name in _checked_names(sa.inspect(conn).get_table_names(), tables):
            query = sa.select(sa.func.count()).select_from(sa.table(name))
            counted[name] = TableFingerprint(int(conn.execute(query).scalar_one()), f"{COUNTED}:")
    return Fingerprint(counted, token)


def unchanged_since(
    engine: sa.Engine, previous: Fingerprint | None, tables: list[str]
) -> Fingerprint | None:
    """`previous`, narrowed to `tables`, when the database provably did not change since it
    was taken (its token is the same); else None."""
    return _reused(engine, tables, previous, change_token(engine))


def describe_changes(old: Fingerprint, new: Fingerprint) -> list[str]:
    """Human reasons why `new` differs from `old`, one per table, sorted by table name.

    Empty when the tables are equal (a different token alone is not a change of data).
    """
    reasons = []
    for name in sorted(old.tables.keys() | new.tables.keys()):
        before, after = old.tables.get(name), new.tables.get(name)
        if before == after:
            continue
        if before is None:
            assert after is not None
            reasons.append(f"table {name} added ({_rows(after.rows)})")
        elif after is None:
            reasons.append(f"table {name} removed")
        elif before.rows != after.rows:
            reasons.append(f"table {name} changed: {before.rows:,} → {after.rows:,} rows")
        elif before.method == COUNTED:
            reasons.append(
                f"table {name}: its rows were only counted when it was first copied, so a "
                f"change cannot be ruled out ({_rows(after.rows)})"
            )
        elif before.method != after.method:
            reasons.append(
                f"table {name}: recorded by an older dsdb ({before.method}, now {after.method}),"
                f" so a change cannot be ruled out ({_rows(after.rows)})"
            )
        else:
            reasons.append(f"table {name}: content changed, still {_rows(after.rows)}")
    return reasons


M = TypeVar("M")

# --- reading ---------------------------------------------------------------------------------


@contextmanager
def _reading(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection set up so that checksums are repeatable: one snapshot, fixed formatting."""
    with engine.connect() as conn:
        rules = known_engine(conn.dialect)
        if rules is not None and rules.snapshot_isolation is not None:  # one snapshot for all
            conn.execution_options(isolation_level=rules.snapshot_isolation)
        try:
            with _formatting(conn):
                yield conn
        finally:
            conn.rollback()


def _formatting(conn: sa.Connection) -> AbstractContextManager[None]:
    """The engine's fixed text forms of values (time zone, float digits, ...) for the block."""
    rules = known_engine(conn.dialect)
    return rules.fixed_formatting(conn) if rules is not None else nullcontext()


def _by_engine(dialect: sa.Dialect, methods: Mapping[Engine, M]) -> M | None:
    rules = known_engine(dialect)
    return methods.get(rules) if rules is not None else None


def _fingerprint(conn: sa.Connection, table: sa.FromClause, label: str) -> TableFingerprint:
    method = _by_engine(conn.dialect, _IN_DATABASE) or _in_python
    try:
        return method(conn, table)
    except sa.exc.DBAPIError as error:
        raise DsdbError(f"cannot fingerprint {label}: {driver_message(error)}") from error


def _fingerprint_table(
    conn: sa.Connection,
    name: str,
    columns: Sequence[ReflectedColumn],
    previous: TableFingerprint | None = None,
) -> TableFingerprint:
    """A whole table's fingerprint, by the cheapest exact method its database has: `previous`
    when the table's token proves it unchanged since."""
    table = sa.table(name, *(sa.column(column["name"]) for column in columns))
    method = _by_engine(conn.dialect, _TABLES_IN_DATABASE)
    if method is None:
        return _fingerprint(conn, table, f"table {name}")
    try:
        if previous is not None and _token_is(conn, previous.token, table, columns):
            return previous
        return method(conn, table, columns)
    except sa.exc.DBAPIError as error:
        raise DsdbError(f"cannot fingerprint table {name}: {driver_message(error)}") from error


def _token_is(
    conn: sa.Connection,
    token: str | None,
    table: sa.TableClause,
    columns: Sequence[ReflectedColumn],
) -> bool:
    """Whether the table's token is still `token`: a cheaper scan than its content."""
    rules = known_engine(conn.dialect)
    if token is None or rules is None or not rules.capabilities.row_versions:
        return False
    count, written = _aggregate(conn, table, _PG_WRITTEN)
    return _pg_token(count, written, columns) == token


#: Every row version carries the id of the transaction that wrote it (`xmin`): an insert,
#: update or delete adds or removes one, so their hashes' sum moves with any committed
#: write; VACUUM (FREEZE, FULL) and CLUSTER keep them. Cheaper to sum than the content.
_PG_WRITTEN = sa.func.sum(
    sa.func.hashint8(sa.cast(sa.cast(sa.literal_column("xmin"), sa.Text), sa.BigInteger))
)


def _pg_token(count: int, written: int, columns: Sequence[ReflectedColumn]) -> str:
    # Adding or dropping a column changes every row without writing one: the columns and
    # their types are part of the token.
    layout = hashlib.sha256(ascii([(c["name"], str(c["type"])) for c in columns]).encode())
    return f"pgx1:{count}:{written % 2**64:016x}:{layout.hexdigest()[:16]}"


def _table_in_postgresql(
    conn: sa.Connection, table: sa.TableClause, columns: Sequence[ReflectedColumn]
) -> TableFingerprint:
    """PostgreSQL's own hash of each row (`hash_record_extended`, 14+), summed.

    Five times cheaper than md5 of the row's text (`_in_postgresql`, used before 14). A
    value that has no hash function (json, xml, arrays, geometric types, ...) is hashed by
    its text. A numeric's hash ignores trailing zeros, so its scale is hashed with it.
    """
    if (conn.dialect.server_version_info or (0,)) < (14,):
        return _in_postgresql(conn, table)
    fields: list[sa.ColumnElement[Any]] = []
    for column, type_ in zip(table.c, (c["type"] for c in columns), strict=True):
        if not isinstance(type_, _PG_HASHED):
            fields.append(sa.cast(column, sa.Text))
            continue
        fields.append(column)
        if isinstance(type_, sa.Numeric) and not isinstance(type_, sa.Float):
            fields.append(sa.func.scale(column))
    row_hash = sa.func.hash_record_extended(sa.func.ROW(*fields), 0)
    # The token in the same scan, for the next plan to check first.
    query = sa.select(
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(row_hash), 0),
        sa.func.coalesce(_PG_WRITTEN, 0),
    ).select_from(table)
    count, checksum, written = conn.execute(query).one()
    token = _pg_token(count, int(written), columns)
    return TableFingerprint(count, f"pg3:{int(checksum) % 2**64:016x}", token)


#: Column types whose values PostgreSQL hashes itself: they have an extended hash function,
#: and equal hashes mean equal stored values (with a numeric's scale added). Not intervals:
#: '1 day' and '24 hours' hash alike.
_PG_HASHED = (
    sa.Integer,
    sa.Numeric,
    sa.Float,  # by its exact value (named apart: not a Numeric since SQLAlchemy 2.1)
    sa.String,  # text, varchar, char, enums
    sa.Boolean,
    sa.Date,
    sa.DateTime,
    sa.Time,
    sa.LargeBinary,
    sa.Uuid,
    postgresql.JSONB,
)


def _table_in_mysql(
    conn: sa.Connection, table: sa.TableClause, columns: Sequence[ReflectedColumn]
) -> TableFingerprint:
    """CHECKSUM TABLE, with the lengths of the variable-length values of each row.

    The server sums a CRC32 of each row in C: about six times cheaper than hashing each row
    in SQL (`_in_mysql`). It hashes variable-length
    values without their lengths, so ('ab', '') and ('a', 'b') would look alike; a CRC32 of
    each row's lengths, summed, tells them apart. 32-bit hashes: a change goes unseen with
    a chance of one in four billion; the row count is exact.
    """
    lengths = [
        sa.func.length(column)
        for column, type_ in zip(table.c, (c["type"] for c in columns), strict=True)
        if not isinstance(type_, _MYSQL_FIXED_SIZE)
    ]
    layout = sa.func.crc32(sa.func.concat_ws(",", *lengths)) if lengths else sa.literal(0)
    # The two scans run at once, the checksum on a connection of its own: each mostly waits
    # for the server. Not one snapshot, but a write between them only reads as a change.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsdb-checksum") as pool:
        checksum = pool.submit(_checksum_table, conn.engine, str(table.name))
        count, shapes = _aggregate(conn, table, sa.func.sum(layout))
        crc = checksum.result()
    return TableFingerprint(count, f"my3:{crc:08x}{shapes % 2**64:016x}")


def _checksum_table(engine: sa.Engine, name: str) -> int:
    quoted = quote_for_driver(engine.dialect, name)
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"CHECKSUM TABLE {quoted}").one()[1] or 0)


#: Column types MariaDB/MySQL store in a fixed number of bytes (a decimal too), which
#: CHECKSUM TABLE hashes unambiguously.
_MYSQL_FIXED_SIZE = (
    sa.Integer,
    sa.Numeric,
    sa.Float,  # not a Numeric since SQLAlchemy 2.1
    sa.Boolean,
    sa.Date,
    sa.DateTime,
    sa.Time,
    sa.Enum,
    mysql.YEAR,
)

_TableMethod = Callable[
    [sa.Connection, sa.TableClause, Sequence[ReflectedColumn]], TableFingerprint
]
_TABLES_IN_DATABASE: dict[Engine, _TableMethod] = {
    POSTGRESQL: _table_in_postgresql,
    MYSQL: _table_in_mysql,
}


def _in_postgresql(conn: sa.Connection, table: sa.FromClause) -> TableFingerprint:
    """md5 of each row's text form, its first 64 bits summed as numeric (no overflow)."""
    # ROW(...)::text writes NULL as nothing and '' as "", so the two stay distinct.
    row_hash = sa.func.md5(sa.cast(sa.func.ROW(*table.c), sa.Text))
    high = sa.literal_column("'x'", sa.Text) + sa.func.substr(row_hash, 1, 16)
    total = sa.func.sum(sa.cast(sa.cast(high, postgresql.BIT(64)), sa.BigInteger))
    count, checksum = _aggregate(conn, table, total)
    return TableFingerprint(count, f"pg1:{checksum % 2**64:016x}")


def _in_mysql(conn: sa.Connection, table: sa.FromClause) -> TableFingerprint:
    """md5 of a length-prefixed encoding of each row, its first 64 bits summed as DECIMAL."""
    # CONCAT_WS skips NULLs and a separator can occur in a value, so each value is written as
    # "<length>:<bytes>" and NULL as "N": unambiguous. Bytes, so mixed collations cannot clash.
    parts = [
        sa.func.coalesce(
            sa.func.concat(sa.func.length(value), ":", value),
            "N",
        )
        for value in (sa.cast(column, mysql.BINARY()) for column in table.c)
    ]
    row_hash = sa.func.md5(sa.func.concat(*parts))
    high = sa.func.conv(sa.func.substring(row_hash, 1, 16), 16, 10)
    total = sa.func.sum(sa.cast(high, mysql.INTEGER(unsigned=True)))
    count, checksum = _aggregate(conn, table, total)
    return TableFingerprint(count, f"my1:{checksum % 2**64:016x}")


def _aggregate(
    conn: sa.Connection, table: sa.FromClause, total: sa.ColumnElement[Any]
) -> tuple[int, int]:
    query = sa.select(sa.func.count(), sa.func.coalesce(total, 0)).select_from(table)
    count, checksum = conn.execute(query).one()
    return int(count), int(checksum)  # sums come back as Decimal: exact, however large


def _in_python(conn: sa.Connection, table: sa.FromClause) -> TableFingerprint:
    """Stream the rows and sum a 128-bit hash of each row's canonical bytes."""
    # Raw driver values: SQLAlchemy's type processors would parse SQLite's text dates and
    # round decimals, so two different stored values could look equal.
    query = sa.select(*(sa.type_coerce(c, sa.types.NullType()) for c in table.c)).select_from(table)
    digest = RowDigest()
    for chunk in read_chunks(conn, query, _CHUNK_ROWS):
        digest.add(chunk)
    return digest.result()


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
        self._rows += len(rows)
        try:
            encoded = list(map(marshal.dumps, rows, repeat(_MARSHAL_FORMAT)))
        except ValueError:
            encoded = list(map(_row_bytes, rows))
        self._total += sum(map(xxh3_128_intdigest, encoded))

    def result(self) -> TableFingerprint:
        return TableFingerprint(self._rows, f"py2:{self._total % 2**128:032x}")


_MARSHAL_FORMAT = 2


def _row_bytes(row: tuple[Any, ...]) -> bytes:
    try:
        return marshal.dumps(row, _MARSHAL_FORMAT)
    except ValueError:
        # ascii() of a tuple quotes and escapes strings (NULL, '' and 'None' differ) and, unlike
        # repr(), does not depend on the Unicode version's idea of a printable character.
        return marshal.dumps(ascii(row), _MARSHAL_FORMAT)


def read_chunks(
    conn: sa.Connection, query: sa.Executable, size: int
) -> Iterator[Sequence[tuple[Any, ...]]]:
    """The query's rows as plain tuples, `size` at a time: memory bounded by one chunk.

    Its columns should be untyped (`sa.column`, `type_coerce` to NullType): raw driver values,
    which SQLAlchemy's processors would otherwise parse (SQLite's text dates). Binary values
    come as `bytes`, whatever the driver returns.
    """
    rules = known_engine(conn.dialect)
    if rules is not None and rules.registration.embedded:
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


_Method = Callable[[sa.Connection, sa.FromClause], TableFingerprint]
_IN_DATABASE: dict[Engine, _Method] = {POSTGRESQL: _in_postgresql, MYSQL: _in_mysql}


# --- SQLite token ----------------------------------------------------------------------------


def change_token(engine: sa.Engine) -> str | None:
    """A digest of everything about a SQLite file that a committed write changes, or None
    for databases that have no such token. Take it before reading the data it vouches for."""
    path = _sqlite_path(engine.url)
    if path is None or not os.path.isfile(path):
        return None
    digest = hashlib.sha256(_TOKEN_VERSION)
    wal = path + "-wal"
    # An empty or absent WAL holds no data: merely opening a WAL-mode database creates an
    # empty one (and its index), which must not count as a change.
    wal_has_frames = os.path.isfile(wal) and os.path.getsize(wal) > 0
    for suffix, header in _SQLITE_FILES:
        if suffix and not wal_has_frames:
            continue
        file = path + suffix
        try:
            with open(file, "rb") as handle:
                # ctime as well as mtime: it cannot be set back by touch or a copy tool, and
                # the inode changes when the file is replaced by another one.
                st = os.fstat(handle.fileno())
                digest.update(
                    f"{suffix}:{st.st_dev}:{st.st_ino}:{st.st_size}:"
                    f"{st.st_mtime_ns}:{st.st_ctime_ns}:".encode()
                )
                digest.update(handle.read(header))
        except FileNotFoundError:  # a checkpoint removed the WAL meanwhile: no token, reread
            return None
    return digest.hexdigest()


def _sqlite_path(url: sa.URL) -> str | None:
    """The database file behind a SQLite URL; None for other dialects and in-memory databases."""
    rules = known_engine(url.get_backend_name())
    if rules is None or not rules.capabilities.file_change_token:
        return None
    database = url.database or ""
    if database in ("", ":memory:"):
        return None
    if database.startswith("file:") and str(url.query.get("uri", "")).lower() in ("true", "1"):
        parts = urlsplit(database)
        if "memory" in parse_qs(parts.query).get("mode", []):
            return None
        database = parts.path
    return os.path.abspath(database)


# --- helpers ---------------------------------------------------------------------------------


def _reused(
    engine: sa.Engine, tables: list[str] | None, previous: Fingerprint | None, token: str | None
) -> Fingerprint | None:
    """`previous`, narrowed to `tables`, when the database provably did not change since."""
    if token is None or previous is None or previous.token != token:
        return None
    wanted = set(tables) if tables is not None else set(_table_names(engine))
    if not wanted <= previous.tables.keys():
        return None
    return Fingerprint({name: previous.tables[name] for name in sorted(wanted)}, token)


def _table_names(engine: sa.Engine) -> list[str]:
    return sa.inspect(engine).get_table_names()


def _checked_names(existing: list[str], wanted: list[str] | None) -> list[str]:
    if wanted is None:
        return sorted(existing)
    unknown = sorted(set(wanted) - set(existing))
    if unknown:
        noun = "table" if len(unknown) == 1 else "tables"
        raise DsdbError(f"no {noun} {_names(unknown)} in the database")
    return sorted(set(wanted))


def _required(data: Mapping[str, Any], key: str, kind: type) -> Any:
    value = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DsdbError(f"malformed fingerprint: {key!r} must be {kind.__name__}, not {value!r}")
    return value


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _rows(count: int) -> str:
    return "1 row" if count == 1 else f"{count:,} rows"
