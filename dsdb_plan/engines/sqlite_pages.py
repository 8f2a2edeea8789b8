"""A SQLite table's `py2` checksum, reading again only the pages that changed (issue 15, aim 5).

A table's rows live in the leaf pages of its b-tree, in rowid order, values too big for a
page spilling into overflow pages. A leaf whose bytes, with its overflow pages' bytes and
the table's declaration, are the same as when its rows were last hashed holds the same rows,
so their hash sum comes from a cache instead of from reading them; only the leaves whose
bytes changed are read through SQLite, by their rowid range. Leaves are cached in runs of
about 16 (`_Run`), which keeps the cache small; a change rereads a few hundred rows. The sum
over the leaves is exactly what hashing every row gives (`RowDigest`), so the checksum
compares with any other `py2` checksum.

Finding the leaves costs a read of the table's interior pages (a few in a thousand of its
pages, https://www.sqlite.org/fileformat2.html#b_tree_pages); then each run's leaves are
read from the file in one stretch where they are consecutive, and hashed in C (xxh3):
about 0.13 s of CPU for a 300 MB table of 2,000,000 rows (benchmarks/results.md). That
read is what a plan after a change costs: it grows with the table's bytes, at memory speed,
since a rollback-journal file does not say which pages a write touched. Where the leaves'
cells spill into overflow pages is found by parsing the cells, once per new bytes of a run's
leaves: the same bytes point at the same overflow pages, whose bytes are hashed too.

The pages are read from the file, so this is done only where that is sound: under a read
transaction, which keeps writers from changing the file (its shared lock in rollback-journal
mode; in WAL mode, only while the WAL is empty, as when no connection is open, else the
newest pages are in the WAL), for a table with rowids. Elsewhere, and where a page is not
as the file format describes, `table_checksum` returns None and the rows are all read and
hashed.

The cache is a file per table in the user's cache folder (`DSDB_CACHE_DIR`, else
`$XDG_CACHE_HOME/dsdb` or `~/.cache/dsdb`), replaced whole; a missing or unreadable one only
costs a full read. It holds hashes, never values.
"""

from __future__ import annotations

import hashlib
import marshal
import operator
import os
import sqlite3
import struct
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

from xxhash import xxh3_128

from dsdb_plan.checksum import RowDigest, TableFingerprint, row_hash_sum

_FORMAT = b"dsdb-sqlite-pages-2"
#: Past this share of changed runs, one scan of the table is cheaper than a query per run.
_MOST = 0.25
_TABLE_LEAF = 0x0D
_TABLE_INTERIOR = 0x05
#: A run holds about 16 leaves: a cache entry for a few hundred rows.
_RUN_LEAVES = 16
#: Deeper than any b-tree a 2**32-page file can hold: a loop in a damaged file ends.
_MAX_DEPTH = 20
#: Random bytes for `_run_ends`, the same in every process and version.
_RUN_TABLE = hashlib.shake_128(_FORMAT).digest(2 * 65536)
#: Rows and hash sum of each run, by its key.
_Cache = dict[bytes, tuple[int, int]]
#: The overflow chains of a run's leaves (first page, length), by the hash of the leaves.
_Spills = dict[bytes, tuple[tuple[int, int], ...]]


class _Run(NamedTuple):
    """Consecutive leaves, cached as one (where a run ends: `_run_ends`)."""

    #: What the run's rows hash to, as cached: its leaves' bytes, their overflow pages' bytes
    #: and the table's declaration.
    key: bytes
    cells: int
    pages: tuple[int, ...]
    #: The hash of the leaves' bytes alone, under which their overflow chains are cached.
    leaves_key: bytes


def table_checksum(
    raw: sqlite3.Connection, table: str, columns: Sequence[str]
) -> TableFingerprint | None:
    """The table's `py2` fingerprint, from cached page hashes where its pages did not change;
    None where that cannot be done soundly (see the module's docstring) or SQLite refused a
    step (a busy file, say): the caller then reads every row, and reports what fails."""
    try:
        return _by_pages(raw, table, columns)
    except (sqlite3.Error, IndexError, struct.error):  # a busy file, or a page not as expected
        return None


def table_token(raw: sqlite3.Connection, table: str, columns: Sequence[str]) -> str | None:
    """A digest of the pages `table_checksum` would read (the table's leaves, their overflow
    pages, its declaration): the same while the table's rows are, moved by any write to them,
    and read at memory speed, without decoding a row. None where `table_checksum` could not
    read the pages soundly."""
    try:
        with _table_runs(raw, table, columns) as found:
            if found is None:
                return None
            runs = found[1]
    except (sqlite3.Error, IndexError, struct.error):
        return None
    hasher = xxh3_128(_FORMAT)
    for run in runs:
        hasher.update(run.key)
    return f"pages:{hasher.hexdigest()}"


def _by_pages(
    raw: sqlite3.Connection, table: str, columns: Sequence[str]
) -> TableFingerprint | None:
    with _table_runs(raw, table, columns) as found:
        if found is None:
            return None
        pages, runs, cache_file, cached, spills = found
        rowid = _rowid_name(columns)
        select = f"SELECT {', '.join(map(_quote, columns))} FROM {_quote(table)}"
        changed = [run for run in runs if run.key not in cached]
        if len(changed) > _MOST * len(runs):
            hashed = _scan(raw, f"{select} ORDER BY {rowid}", pages, runs)
        else:
            hashed = _ranges(raw, f"{select} WHERE {rowid} BETWEEN ? AND ?", pages, changed)
        if hashed is None:
            return None
    known = {**cached, **hashed}
    _save(
        cache_file,
        {run.key: known[run.key] for run in runs},
        {run.leaves_key: spills[run.leaves_key] for run in runs},
    )
    digest = RowDigest()
    for run in runs:
        digest.add_total(*known[run.key])
    return digest.result()


@contextmanager
def _table_runs(
    raw: sqlite3.Connection, table: str, columns: Sequence[str]
) -> Iterator[tuple[_Pages, list[_Run], Path, _Cache, _Spills] | None]:
    """Inside one read transaction: the table's pages, its runs, its cache file and what that
    holds; None where the pages cannot be read soundly (see the module's docstring)."""
    file = _main_file(raw)
    if file is None or _rowid_name(columns) is None:
        yield None
        return
    with _read_transaction(raw), _pages(file) as pages:
        if pages is None or (_journal_mode(raw) == "wal" and _wal_has_frames(file)):
            yield None  # the newest pages may be in the WAL, not in the file
            return
        cache_file = _cache_file(file, table)
        cached, spills = _load(cache_file)
        runs = _runs(raw, pages, table, spills)
        yield None if runs is None else (pages, runs, cache_file, cached, spills)


def _rowid_name(columns: Sequence[str]) -> str | None:
    """A name that reads the rowid, unless every alias is a column's name."""
    return next((name for name in ("_rowid_", "rowid", "oid") if name not in columns), None)


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
    """The database file's pages, each read when asked for: memory holds a few at a time."""

    def __init__(self, file: int, size: int, reserved: int) -> None:
        self.file, self.size = file, size
        #: The bytes of a page the b-tree uses; extensions may reserve the rest.
        self.usable = size - reserved
        self.count = os.fstat(file).st_size // size

    def __getitem__(self, number: int) -> bytes:
        return os.pread(self.file, self.size, (number - 1) * self.size)

    def read(self, first: int, count: int) -> bytes:
        """`count` consecutive pages from `first`, in one read."""
        return os.pread(self.file, count * self.size, (first - 1) * self.size)


@contextmanager
def _pages(file: str) -> Iterator[_Pages | None]:
    with open(file, "rb") as handle:
        header = os.pread(handle.fileno(), 100, 0)
        if len(header) < 100:
            yield None
            return
        # The page size is in the file's header (https://www.sqlite.org/fileformat2.html).
        size = int.from_bytes(header[16:18], "big")
        yield _Pages(handle.fileno(), 65536 if size == 1 else size, header[20])


def _runs(raw: sqlite3.Connection, pages: _Pages, table: str, spills: _Spills) -> list[_Run] | None:
    """The table's leaf pages in key order, in runs; None when the table has no rowids or its
    b-tree is not as the file format describes. `spills` (the overflow pages each run's leaves
    point at, by the leaves' hash) is used and completed."""
    declared = raw.execute(
        "SELECT sql, rootpage FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    if declared is None:
        return None
    sql, root = declared
    if not isinstance(root, int) or root < 2:
        return None
    leaves = _leaves(pages, root)
    if leaves is None:
        return None
    encoding = str(raw.execute("PRAGMA encoding").fetchone()[0])
    # Rows decode by the columns' declared types and the text encoding, not only their bytes.
    layout = hashlib.sha256(
        f"{_FORMAT!r}\0{encoding}\0{pages.size}\0{pages.usable}\0{sql}".encode()
    ).digest()
    runs: list[_Run] = []
    for start, end in pairwise([0, *_run_ends(leaves), len(leaves)]):
        run = _run(pages, layout, leaves[start:end], spills) if end > start else None
        if run is None:
            return None
        runs.append(run)
    return runs


def _leaves(pages: _Pages, root: int) -> list[int] | None:
    """The page numbers of the table's leaves in key order, from its interior pages alone
    (a few in a thousand pages); None if a page is not a table b-tree page. The leaves'
    own type is checked as they are hashed."""
    level = [root]
    for _depth in range(_MAX_DEPTH):
        if pages[level[0]][0] == _TABLE_LEAF:
            return level
        below: list[int] = []
        for number in level:
            page = pages[number]
            if page[0] != _TABLE_INTERIOR:
                return None
            below += _children(page)
        if min(below) < 2 or max(below) > pages.count or len(set(below)) != len(below):
            return None  # a page twice: a damaged file
        level = below
    return None


def _children(page: bytes) -> list[int]:
    """An interior page's children in key order: each cell's left child, then the right-most.
    https://www.sqlite.org/fileformat2.html#b_tree_pages"""
    cells = int.from_bytes(page[3:5], "big")
    offsets = struct.unpack_from(f">{cells}H", page, 12)
    right_most = int.from_bytes(page[8:12], "big")
    return [*(int.from_bytes(page[at : at + 4], "big") for at in offsets), right_most]


def _run_ends(leaves: list[int]) -> list[int]:
    """Where runs end, as indexes into `leaves` (the last leaf aside): after about one leaf
    in `_RUN_LEAVES`, chosen by a hash of its page number, so where runs end depends on each
    leaf alone (a page split adds a page to its run, and leaves the other runs as they are).
    The hash is a lookup of each half of the number in a table of random bytes."""
    low, high = _RUN_TABLE[:65536], _RUN_TABLE[65536:]
    last = len(leaves) - 1
    return [
        index + 1
        for index, number in enumerate(leaves)
        if not (low[number & 0xFFFF] ^ high[number >> 16]) % _RUN_LEAVES and index < last
    ]


def _run(pages: _Pages, layout: bytes, leaves: list[int], spills: _Spills) -> _Run | None:
    """The run of `leaves`: its key hashes their bytes, then the bytes of the overflow pages
    their cells point at, which are found by parsing the cells only for leaves not seen
    before (the same bytes point at the same pages)."""
    hasher = xxh3_128(layout)
    cells = 0
    size = pages.size
    read = []
    for start, count in _stretches(leaves):
        data = pages.read(start, count)
        # Each page's type, and its cell count, from its header: a byte of each page at once.
        if len(data) != count * size or data[::size].count(_TABLE_LEAF) != count:
            return None
        cells += 256 * sum(data[3::size]) + sum(data[4::size])
        hasher.update(data)
        read.append(data)
    own = hasher.digest()
    chains = spills.get(own)
    if chains is None:
        found = [
            _overflow(data[at : at + size], pages.usable)
            for data in read
            for at in range(0, len(data), size)
        ]
        if any(chain is None for chain in found):
            return None
        chains = spills[own] = tuple(chain for each in found if each for chain in each)
    if not chains:
        return _Run(own, cells, tuple(leaves), own)
    hasher = xxh3_128(own)
    for first, count in chains:
        number = first
        for _ in range(count):
            if not 2 <= number <= pages.count:
                return None
            page = pages[number]
            hasher.update(page)
            number = int.from_bytes(page[:4], "big")
        if number != 0:  # the last page of a chain points nowhere
            return None
    return _Run(hasher.digest(), cells, tuple(leaves), own)


def _stretches(numbers: list[int]) -> Iterator[tuple[int, int]]:
    """Consecutive page numbers as (first, how many), to read each stretch at once."""
    start = previous = numbers[0]
    for number in numbers[1:]:
        if number != previous + 1:
            yield start, previous - start + 1
            start = number
        previous = number
    yield start, previous - start + 1


def _overflow(page: bytes, usable: int) -> tuple[tuple[int, int], ...] | None:
    """The overflow chains of a table leaf's cells, each as its first page and its length;
    None if a cell is not where the page says. A cell's payload beyond what the page keeps
    continues in a chain of pages (https://www.sqlite.org/fileformat2.html#overflow_pages)."""
    most = usable - 35  # the largest payload kept whole on a table leaf
    least = (usable - 12) * 32 // 255 - 23
    cells = int.from_bytes(page[3:5], "big")
    starts = sorted(struct.unpack_from(f">{cells}H", page, 8))
    # A cell that spills takes at least `least` bytes of payload, the 4 of the pointer to
    # its overflow page and 2 of sizes: where no cell has that room before the next, none
    # spills (computed in C, where parsing the cells costs a microsecond each).
    if not starts or (
        starts[0] >= 8 + 2 * cells
        and starts[-1] < usable
        and max(map(operator.sub, [*starts[1:], usable], starts)) < least + 6
    ):
        return ()
    chains = []
    for at in starts:
        if not 8 <= at < len(page):
            return None
        payload, at = _varint(page, at)
        _key, at = _varint(page, at)
        if payload <= most:
            continue
        kept = least + (payload - least) % (usable - 4)
        kept = kept if kept <= most else least
        if at + kept + 4 > len(page):
            return None
        first = int.from_bytes(page[at + kept : at + kept + 4], "big")
        chains.append((first, -(-(payload - kept) // (usable - 4))))
    return tuple(chains)


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


def _load(file: Path) -> tuple[_Cache, _Spills]:
    try:
        data = marshal.loads(file.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return {}, {}
    if not (isinstance(data, tuple) and len(data) == 3 and data[0] == _FORMAT):
        return {}, {}  # a cache of another version of this module
    _format, cached, spills = data
    return (cached, spills) if isinstance(cached, dict) and isinstance(spills, dict) else ({}, {})


def _save(file: Path, cache: _Cache, spills: _Spills) -> None:
    """Replace the cache file whole; a cache that cannot be written is only a missed saving."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=file.parent, delete=False) as handle:
            handle.write(marshal.dumps((_FORMAT, cache, spills)))
        os.replace(handle.name, file)
    except OSError:
        return
