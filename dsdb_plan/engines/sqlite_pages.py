"""A SQLite table's `py2` checksum, reading again only the pages that changed (issue 15, aim 5).

A table's rows live in the leaf pages of its b-tree, in rowid order, values too big for a
page spilling into overflow pages. A leaf whose bytes, with its overflow pages' bytes and
the table's declaration, are the same as when its rows were last hashed holds the same rows,
so their hash sum comes from a cache instead of from reading them; only the leaves whose
bytes changed are read through SQLite, by their rowid range. Leaves are cached in runs of
about 16 (`_Run`), which keeps the cache small; a change rereads a few hundred rows. The sum
over the leaves is exactly what hashing every row gives (`RowDigest`), so the checksum
compares with any other `py2` checksum. Hashing the pages' bytes costs a small part of
decoding their rows.

The pages are read from the file, so this is done only where that is sound: under a read
transaction, which keeps writers from changing the file (its shared lock in rollback-journal
mode; in WAL mode, only while the WAL is empty, as when no connection is open, else the
newest pages are in the WAL), for a table with rowids, where SQLite has the `dbstat` table
that lists a table's pages (an option of its build). Elsewhere `table_checksum` returns None
and the rows are all read and hashed.

The cache is a file per table in the user's cache folder (`DSDB_CACHE_DIR`, else
`$XDG_CACHE_HOME/dsdb` or `~/.cache/dsdb`), replaced whole; a missing or unreadable one only
costs a full read. It holds hashes, never values.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

from xxhash import xxh3_128

from dsdb_plan.checksum import RowDigest, TableFingerprint, row_hash_sum

_FORMAT = b"dsdb-sqlite-pages-1"
#: Past this share of changed leaves, one scan of the table is cheaper than a query per leaf.
_MOST = 0.25
_TABLE_LEAF = 0x0D
_TABLE_INTERIOR = 0x05
#: One run ends in 16 leaves: a cache entry for a few hundred rows.
_RUN_END = 16
_Cache = dict[bytes, tuple[int, int]]


class _Run(NamedTuple):
    """Consecutive leaves, cached as one. A run ends after a leaf whose key's first byte is
    below `_RUN_END`, so where runs end depends on each leaf alone: a change, or a page split,
    changes the run it is in, not the others."""

    #: What the run's rows hash to, as cached: its leaves' bytes, their overflow pages' bytes
    #: and the table's declaration.
    key: bytes
    cells: int
    pages: tuple[int, ...]


def table_checksum(
    raw: sqlite3.Connection, table: str, columns: Sequence[str]
) -> TableFingerprint | None:
    """The table's `py2` fingerprint, from cached page hashes where its pages did not change;
    None where that cannot be done soundly (see the module's docstring) or SQLite refused a
    step (a busy file, say): the caller then reads every row, and reports what fails."""
    try:
        return _by_pages(raw, table, columns)
    except sqlite3.Error:
        return None


def _by_pages(
    raw: sqlite3.Connection, table: str, columns: Sequence[str]
) -> TableFingerprint | None:
    file = _main_file(raw)
    rowid = next((name for name in ("_rowid_", "rowid", "oid") if name not in columns), None)
    if file is None or rowid is None:
        return None
    with _read_transaction(raw), _pages(file) as pages:
        if _journal_mode(raw) == "wal" and _wal_has_frames(file):
            return None  # the newest pages may be in the WAL, not in the file
        runs = _runs(raw, pages, table) if pages is not None else None
        if pages is None or runs is None:
            return None
        cache_file = _cache_file(file, table)
        cached = _load(cache_file)
        select = f"SELECT {', '.join(map(_quote, columns))} FROM {_quote(table)}"
        changed = [run for run in runs if run.key not in cached]
        if len(changed) > _MOST * len(runs):
            hashed = _scan(raw, f"{select} ORDER BY {rowid}", pages, runs)
        else:
            hashed = _ranges(raw, f"{select} WHERE {rowid} BETWEEN ? AND ?", pages, changed)
        if hashed is None:
            return None
    known = {**cached, **hashed}
    _save(cache_file, {run.key: known[run.key] for run in runs})
    digest = RowDigest()
    for run in runs:
        digest.add_total(*known[run.key])
    return digest.result()


def _main_file(raw: sqlite3.Connection) -> str | None:
    for _seq, name, file in raw.execute("PRAGMA database_list"):
        if name == "main":
            return str(file) if file else None
    return None


def _journal_mode(raw: sqlite3.Connection) -> str:
    return str(raw.execute("PRAGMA journal_mode").fetchone()[0]).lower()


def _wal_has_frames(file: str) -> bool:
    """Whether the WAL may hold pages newer than the file's. Asked under the read lock: an
    empty WAL then means this transaction reads the file alone, and no checkpoint can
    change the file while it lasts."""
    try:
        return os.path.getsize(file + "-wal") > 0
    except FileNotFoundError:
        return False


@contextmanager
def _read_transaction(raw: sqlite3.Connection) -> Iterator[None]:
    """One read transaction over the pages and the rows: its shared lock, taken by the first
    read, keeps writers from changing the file until it ends."""
    began = not raw.in_transaction
    if began:
        raw.execute("BEGIN")
    try:
        raw.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # takes the lock
        yield
    finally:
        if began:
            raw.rollback()


class _Pages:
    """The database file's pages, each read when asked for: memory holds one at a time."""

    def __init__(self, file: int, size: int) -> None:
        self.file, self.size = file, size

    def __getitem__(self, number: int) -> bytes:
        return os.pread(self.file, self.size, (number - 1) * self.size)


@contextmanager
def _pages(file: str) -> Iterator[_Pages | None]:
    with open(file, "rb") as handle:
        header = os.pread(handle.fileno(), 100, 0)
        if len(header) < 100:
            yield None
            return
        # The page size is in the file's header (https://www.sqlite.org/fileformat2.html).
        size = int.from_bytes(header[16:18], "big")
        yield _Pages(handle.fileno(), 65536 if size == 1 else size)


def _runs(raw: sqlite3.Connection, pages: _Pages, table: str) -> list[_Run] | None:
    """The table's leaf pages in b-tree order, in runs; None when the table has no rowids or
    SQLite cannot list its pages."""
    declared = raw.execute(
        "SELECT sql, rootpage FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    if declared is None:
        return None
    sql, root = declared
    try:
        # dbstat lists a b-tree's pages depth first, each leaf followed by its overflow pages,
        # named after it (`/000/003+000001`: the second overflow page of cell 3 of `/000/`).
        listed = raw.execute(
            "SELECT path, pageno, pagetype FROM dbstat WHERE name = ?", (table,)
        ).fetchall()
    except sqlite3.OperationalError:  # built without SQLITE_ENABLE_DBSTAT_VTAB
        return None
    if root == 1 or pages[root][0] not in (_TABLE_LEAF, _TABLE_INTERIOR):
        return None  # WITHOUT ROWID: an index b-tree
    encoding = str(raw.execute("PRAGMA encoding").fetchone()[0])
    # Rows decode by the columns' declared types and the text encoding, not only their bytes.
    layout = hashlib.sha256(f"{_FORMAT!r}\0{encoding}\0{pages.size}\0{sql}".encode()).digest()
    runs: list[_Run] = []
    run, cells, members = xxh3_128(), 0, list[int]()
    leaf_path, number, hasher = "", 0, None
    for path, page_number, kind in [*listed, ("", 0, "end")]:
        if kind in ("leaf", "end") and hasher is not None:
            page = pages[number]
            if page[0] != _TABLE_LEAF:
                return None
            key = hasher.digest()
            run.update(key)
            cells += int.from_bytes(page[3:5], "big")
            members.append(number)
            if key[0] < _RUN_END or kind == "end":
                runs.append(_Run(run.digest(), cells, tuple(members)))
                run, cells, members = xxh3_128(), 0, []
        if kind == "leaf":
            leaf_path, number, hasher = path, page_number, xxh3_128(layout)
            hasher.update(pages[number])
        elif kind == "overflow":
            if hasher is None or path[: path.rindex("/") + 1] != leaf_path:
                return None  # not right after its leaf, as dbstat lists them
            hasher.update(pages[page_number])
    return runs


def _scan(raw: sqlite3.Connection, select: str, pages: _Pages, runs: list[_Run]) -> _Cache | None:
    """Every run's rows, hashed in one scan in rowid order: each run holds the next `cells`
    rows. None if the leaves are not in key order or the scan does not match them."""
    if _bounds(pages, [number for run in runs for number in run.pages]) is None:
        return None
    cursor = raw.execute(select)
    hashed: _Cache = {}
    for run in runs:
        rows = cursor.fetchmany(run.cells) if run.cells else []
        if len(rows) != run.cells:
            return None
        hashed[run.key] = (len(rows), row_hash_sum(rows))
    return None if cursor.fetchone() is not None else hashed


def _ranges(raw: sqlite3.Connection, select: str, pages: _Pages, runs: list[_Run]) -> _Cache | None:
    """The rows of each run, read by its first and last rowid. None if its leaves are not in
    key order or its range does not hold exactly their cells."""
    hashed: _Cache = {}
    for run in runs:
        bounds = _bounds(pages, run.pages)
        if bounds is None:
            return None
        found = raw.execute(select, bounds).fetchall() if run.cells else []
        if len(found) != run.cells:
            return None
        hashed[run.key] = (len(found), row_hash_sum(found))
    return hashed


def _bounds(pages: _Pages, leaves: Sequence[int]) -> tuple[int, int] | None:
    """The first and last rowid of the leaves (0, 0 if they hold none), or None unless each
    leaf's rowids follow the previous one's: in key order, each leaf's rows are exactly those
    between its first and last rowid."""
    ends: list[tuple[int, int]] = []
    for number in leaves:
        page = pages[number]
        cells = int.from_bytes(page[3:5], "big")
        if cells:
            ends.append((_rowid(page, 0), _rowid(page, cells - 1)))
    in_order = all(first <= last for first, last in ends) and all(
        earlier[1] < later[0] for earlier, later in pairwise(ends)
    )
    if not in_order:
        return None
    return (ends[0][0], ends[-1][1]) if ends else (0, 0)


def _rowid(page: bytes, cell: int) -> int:
    """The rowid of a table leaf's `cell`: after the cell's payload size, both varints.
    https://www.sqlite.org/fileformat2.html#b_tree_pages"""
    at = int.from_bytes(page[8 + 2 * cell : 10 + 2 * cell], "big")
    _, at = _varint(page, at)
    value, _ = _varint(page, at)
    return value - (1 << 64) if value >= 1 << 63 else value


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    for index in range(8):
        byte = data[at + index]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + index + 1
    return (value << 8) | data[at + 8], at + 9


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- the cache -------------------------------------------------------------------------------


def _cache_file(database: str, table: str) -> Path:
    base = os.environ.get("DSDB_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dsdb"
    )
    name = hashlib.sha256(f"{os.path.abspath(database)}\0{table}".encode()).hexdigest()[:32]
    return Path(base) / "sqlite-pages" / name


def _load(file: Path) -> _Cache:
    try:
        data = marshal.loads(file.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(file: Path, cache: _Cache) -> None:
    """Replace the cache file whole; a cache that cannot be written is only a missed saving."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=file.parent, delete=False) as handle:
            handle.write(marshal.dumps(cache))
        os.replace(handle.name, file)
    except OSError:
        return
