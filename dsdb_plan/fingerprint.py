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
- When the token changed, a SQLite table's rows are hashed in Python (`RowDigest`), but only
  those of the pages whose bytes changed since they were last hashed (`engines/sqlite_pages.py`;
  the checksum is the same as hashing every row). Where pages cannot be read soundly, and for
  rows no engine hashes, rows stream in bounded chunks (`rows.read_chunks`). A reader that goes
  through every row anyway, as a backup does, takes the fingerprint in its own snapshot with
  `FingerprintWhileReading`: from the pages, or where they cannot serve from the rows it
  reads, instead of reading them twice.

Each checksum carries the method that made it (`ChecksumMethod`, `checksum.py`): two are only
comparable when their methods are equal, which is so for the same database and the same kind
of fingerprint (whole table or query). The SQL of each method is its engine's
(`table_checksum`, `query_checksum`); rows an engine does not hash are hashed here. A
recorded checksum by an older method reads as a change once (`describe_changes` says so).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import ReflectedColumn

from dsdb_plan.checksum import ChecksumMethod, RowDigest, TableFingerprint, required_field
from dsdb_plan.engines import engine_for
from dsdb_plan.errors import DsdbError, driver_message
from dsdb_plan.rows import read_chunks

_CHUNK_ROWS = 10_000
#: The method of a fingerprint that holds a row count and no content (`count_tables`).
_TOKEN_VERSION = b"dsdb-sqlite-token-1"
# The bytes of each file that change with its content: the whole 100-byte database header
# (file change counter, schema cookie, page count), the WAL header (checkpoint sequence and
# salts, renewed whenever the WAL restarts) and the first copy of the WAL-index header (mxFrame
# and the checksum of the last committed frame, which move with every commit in WAL mode).
# https://www.sqlite.org/fileformat2.html#the_database_header, #walformat, walindexformat.html
_SQLITE_FILES = (("", 100), ("-wal", 32), ("-shm", 48))


@dataclass(frozen=True)
class Fingerprint:
    """The fingerprints of a set of tables, with the token that lets an unchanged file skip work.

    `token` is None unless the database offers an exact, cheap change signal (SQLite files).
    It is a cache key, not data, so equality compares the tables only: the same content read
    twice is equal even when a checkpoint or a no-op write moved the token.
    """

    tables: dict[str, TableFingerprint]
    token: str | None = field(default=None, compare=False)

    def counted(self) -> bool:
        """Whether a table was only counted (`count_tables`), its content not read."""
        return any(t.method is ChecksumMethod.COUNTED for t in self.tables.values())

    def to_dict(self) -> dict[str, Any]:
        tables = {name: self.tables[name].to_dict() for name in sorted(self.tables)}
        return {"tables": tables, "token": self.token}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fingerprint:
        tables = required_field(data, "tables", dict)
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
        written_as = engine_for(conn.dialect).reflected_name  # MySQL's come back escaped
        result = {}
        earlier = previous.tables if previous is not None else {}
        for (_schema, name), cols in sorted(columns.items(), key=lambda item: item[0][1]):
            cols = [{**c, "name": written_as(c["name"])} for c in cols]
            result[name] = _fingerprint_table(conn, name, cols, earlier.get(name))
    return Fingerprint(result, token)


class FingerprintWhileReading:
    """The fingerprint of tables a caller reads whole anyway, with as little reading of its own
    as possible; equal to what `fingerprint_database` returns for the same data.

    Made before the caller reads (the token is taken then). `previous` is reused as
    `fingerprint_database` would. Otherwise each SQLite table is fingerprinted in the
    caller's snapshot before the caller reads it: from the page cache where the engine can
    (`needs_rows`), else from its rows as the caller hands them to `add`, so the fingerprint
    is of the very rows it read; other databases are fingerprinted at once, in the database,
    before the caller reads.
    """

    def __init__(
        self, engine: sa.Engine, tables: list[str] | None, previous: Fingerprint | None = None
    ) -> None:
        self._token = change_token(engine)
        self._known = _reused(engine, tables, previous, self._token)
        self._digests: dict[str, RowDigest] | None = None
        self._checksummed: dict[str, TableFingerprint] = {}
        if self._known is None:
            if not engine_for(engine.dialect).checksums_tables:  # hashed in Python anyway
                self._digests = {}
            else:
                self._known = fingerprint_database(engine, tables)

    def needs_rows(self, conn: sa.Connection, table: str, columns: Sequence[str]) -> bool:
        """Whether `add` must see the rows of `table` (`columns` in table order): not when the
        fingerprint is known, or the engine checksums the table in `conn`'s snapshot without
        them (SQLite's unchanged pages, `engines/sqlite_pages.py`)."""
        if self._digests is None:
            return False
        clause = sa.table(table, *map(sa.column, columns))
        reflected = [cast(ReflectedColumn, {"name": name}) for name in columns]
        try:
            found = engine_for(conn.dialect).table_checksum(conn, clause, reflected)
        except sa.exc.DBAPIError as error:
            raise DsdbError(f"cannot fingerprint table {table}: {driver_message(error)}") from error
        if found is None:
            return True
        self._checksummed[table] = found
        return False

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
            {
                name: self._checksummed.get(name) or digests.get(name, RowDigest()).result()
                for name in sorted(tables)
            },
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
    with engine_for(conn.dialect).fixed_formatting(conn):
        return _fingerprint(conn, query.subquery("q"), label)


def count_tables(engine: sa.Engine, tables: list[str]) -> Fingerprint:
    """The row count of each of `tables`, checksummed as `ChecksumMethod.COUNTED` (no content
    read), under the token taken before counting: a first copy needs no more to plan (its
    apply digests every row it copies), and while the token holds, the next plan reuses it.
    Each table's own token, where the engine has a cheap one, lets a later plan tell the
    tables that did not change from those that may have."""
    token = change_token(engine)
    counted: dict[str, TableFingerprint] = {}
    with engine.connect() as conn:
        rules = engine_for(conn.dialect)
        rules.begin_snapshot(conn, read_only=True)  # the counts and tokens of one moment
        inspector = sa.inspect(conn)
        names = _checked_names(inspector.get_table_names(), tables)
        columns = inspector.get_multi_columns(filter_names=names) if names else {}
        for (_schema, name), cols in sorted(columns.items(), key=lambda item: item[0][1]):
            table = sa.table(name, *(sa.column(c["name"]) for c in cols))
            rows = int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
            own = rules.table_token(conn, table, cols)
            counted[name] = TableFingerprint(rows, ChecksumMethod.COUNTED, "", own)
        conn.rollback()
    return Fingerprint(counted, token)


def unchanged_since(
    engine: sa.Engine, previous: Fingerprint | None, tables: list[str]
) -> Fingerprint | None:
    """`previous`, narrowed to `tables`, when the database provably did not change since it
    was taken (its token is the same); else None."""
    return _reused(engine, tables, previous, change_token(engine))


def changed_tables(old: Fingerprint, new: Fingerprint) -> set[str]:
    """The tables whose fingerprints differ (one missing on either side counts)."""
    names = old.tables.keys() | new.tables.keys()
    return {name for name in names if old.tables.get(name) != new.tables.get(name)}


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
        elif before.method is ChecksumMethod.COUNTED and before.token is None:
            reasons.append(
                f"table {name}: its rows were only counted when it was first copied, so a "
                f"change cannot be ruled out ({_rows(after.rows)})"
            )
        elif before.method is ChecksumMethod.COUNTED:  # its token moved
            reasons.append(
                f"table {name}: its pages changed since it was first copied, "
                f"still {_rows(after.rows)}"
            )
        elif before.method != after.method:
            reasons.append(
                f"table {name}: recorded by an older dsdb ({before.method_name}, now"
                f" {after.method_name}), so a change cannot be ruled out ({_rows(after.rows)})"
            )
        else:
            reasons.append(f"table {name}: content changed, still {_rows(after.rows)}")
    return reasons


# --- reading ---------------------------------------------------------------------------------


@contextmanager
def _reading(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection set up so that checksums are repeatable: one snapshot, fixed formatting."""
    with engine.connect() as conn:
        rules = engine_for(conn.dialect)
        if rules.snapshot_isolation is not None:  # one snapshot for all
            conn.execution_options(isolation_level=rules.snapshot_isolation)
        try:
            with rules.fixed_formatting(conn):
                yield conn
        finally:
            conn.rollback()


def _fingerprint(conn: sa.Connection, rows: sa.FromClause, label: str) -> TableFingerprint:
    try:
        return engine_for(conn.dialect).query_checksum(conn, rows) or _in_python(conn, rows)
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
    rules = engine_for(conn.dialect)
    try:
        if previous is not None and rules.token_matches(conn, table, columns, previous.token):
            return previous
        return rules.table_checksum(conn, table, columns) or _in_python(conn, table)
    except sa.exc.DBAPIError as error:
        raise DsdbError(f"cannot fingerprint table {name}: {driver_message(error)}") from error


def _in_python(conn: sa.Connection, table: sa.FromClause) -> TableFingerprint:
    """Stream the rows and sum a 128-bit hash of each row's canonical bytes."""
    # Raw driver values: SQLAlchemy's type processors would parse SQLite's text dates and
    # round decimals, so two different stored values could look equal.
    query = sa.select(*(sa.type_coerce(c, sa.types.NullType()) for c in table.c)).select_from(table)
    digest = RowDigest()
    for chunk in read_chunks(conn, query, _CHUNK_ROWS):
        digest.add(chunk)
    return digest.result()


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
    if not engine_for(url.get_backend_name()).capabilities.file_change_token:
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


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _rows(count: int) -> str:
    return "1 row" if count == 1 else f"{count:,} rows"
