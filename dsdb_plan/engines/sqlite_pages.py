"""A SQLite table's `py2` checksum, reading again only the pages that changed (issue 15, aim 5).

A table's rows live in the leaf pages of its b-tree, in rowid order, values too big for a
page spilling into overflow pages. A leaf whose bytes, with its overflow pages' bytes and
the table's declaration, are the same as when its rows were last hashed holds the same rows,
so their hash sum comes from a cache instead of from reading them; only the leaves whose
bytes changed are read through SQLite, by their rowid range. The sum over the leaves is
exactly what hashing every row gives (`RowDigest`), so the checksum compares with any other
`py2` checksum. Hashing the pages' bytes costs a small part of decoding their rows.

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
import mmap
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
_Cache = dict[bytes, tuple[int, int]]


class _Leaf(NamedTuple):
    number: int
    #: What the leaf's rows hash to, as cached: its bytes, overflow pages and declaration.
    key: bytes
    cells: int


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
        leaves = _leaves(raw, pages, table) if pages is not None else None
        if pages is None or leaves is None:
            return None
        cache_file = _cache_file(file, table)
        cached = _load(cache_file)
        select = f"SELECT {', '.join(map(_quote, columns))} FROM {_quote(table)}"
        changed = [leaf for leaf in leaves if leaf.key not in cached]
        if len(changed) > _MOST * len(leaves):
            hashed = _scan(raw, f"{select} ORDER BY {rowid}", pages, leaves)
        else:
            hashed = _ranges(raw, f"{select} WHERE {rowid} BETWEEN ? AND ?", pages, changed)
        if hashed is None:
            return None
    known = {**cached, **hashed}
    _save(cache_file, {leaf.key: known[leaf.key] for leaf in leaves})
    digest = RowDigest()
    for leaf in leaves:
        digest.add_total(*known[leaf.key])
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
    """The database file's pages, read in place (mapped, not copied)."""

    def __init__(self, view: memoryview, size: int) -> None:
        self.view, self.size = view, size

    def __getitem__(self, number: int) -> memoryview:
        return self.view[(number - 1) * self.size : number * self.size]


@contextmanager
def _pages(file: str) -> Iterator[_Pages | None]:
    with open(file, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            yield None
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            # The page size is in the file's header (https://www.sqlite.org/fileformat2.html).
            size = int.from_bytes(data[16:18], "big")
            with memoryview(data) as view:
                yield _Pages(view, 65536 if size == 1 else size)


def _leaves(raw: sqlite3.Connection, pages: _Pages, table: str) -> list[_Leaf] | None:
    """The table's leaf pages in b-tree order, each with the key its rows are cached under;
    None when the table has no rowids or SQLite cannot list its pages."""
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
    leaves: list[_Leaf] = []
    leaf_path, number, hasher = "", 0, None
    for path, page_number, kind in [*listed, ("", 0, "end")]:
        if kind in ("leaf", "end") and hasher is not None:
            page = pages[number]
            if page[0] != _TABLE_LEAF:
                return None
            leaves.append(_Leaf(number, hasher.digest(), int.from_bytes(page[3:5], "big")))
        if kind == "leaf":
            leaf_path, number, hasher = path, page_number, xxh3_128(layout)
            hasher.update(pages[number])
        elif kind == "overflow":
            if hasher is None or path[: path.rindex("/") + 1] != leaf_path:
                return None  # not right after its leaf, as dbstat lists them
            hasher.update(pages[page_number])
    return leaves


def _scan(
    raw: sqlite3.Connection, select: str, pages: _Pages, leaves: list[_Leaf]
) -> _Cache | None:
    """Every leaf's rows, hashed in one scan in rowid order: each leaf holds the next `cells`
    rows. None if the leaves are not in key order or the scan does not match them."""
    firsts = [_rowid(pages[leaf.number], 0) for leaf in leaves if leaf.cells]
    if any(later <= earlier for earlier, later in pairwise(firsts)):
        return None
    cursor = raw.execute(select)
    hashed: _Cache = {}
    for leaf in leaves:
        rows = cursor.fetchmany(leaf.cells)
        if len(rows) != leaf.cells:
            return None
        hashed[leaf.key] = (len(rows), row_hash_sum(rows))
    return None if cursor.fetchone() is not None else hashed


def _ranges(
    raw: sqlite3.Connection, select: str, pages: _Pages, leaves: list[_Leaf]
) -> _Cache | None:
    """The rows of each leaf, read by its first and last rowid. None if a leaf's range does
    not hold exactly its cells."""
    hashed: _Cache = {}
    for leaf in leaves:
        if leaf.cells == 0:
            hashed[leaf.key] = (0, 0)
            continue
        page = pages[leaf.number]
        found = raw.execute(select, (_rowid(page, 0), _rowid(page, leaf.cells - 1))).fetchall()
        if len(found) != leaf.cells:
            return None
        hashed[leaf.key] = (len(found), row_hash_sum(found))
    return hashed


def _rowid(page: memoryview, cell: int) -> int:
    """The rowid of a table leaf's `cell`: after the cell's payload size, both varints.
    https://www.sqlite.org/fileformat2.html#b_tree_pages"""
    at = int.from_bytes(page[8 + 2 * cell : 10 + 2 * cell], "big")
    _, at = _varint(page, at)
    value, _ = _varint(page, at)
    return value - (1 << 64) if value >= 1 << 63 else value


def _varint(data: memoryview, at: int) -> tuple[int, int]:
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
