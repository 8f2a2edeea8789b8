"""Verify a copied table: the target holds exactly the source subset (issue 4, item 8), or,
at a migration's `verify: counts`, as many rows as it (`verify_counts`).

Both sides are summarised by the portable digest of `digest.py`, computed by the database
itself where it can (`sql_digest.py`: PostgreSQL, MariaDB) and otherwise by streaming the
rows through Python in bounded chunks. The two ways agree, so each side picks its own.

Between two databases of the same kind a table is first compared by the fingerprint that
database takes of its own tables (`fingerprint.py`), which is several times cheaper (in C
rather than Python for SQLite): equal values stored alike give equal fingerprints. Only
when those differ, which may also come from a column typed differently on each side, does
the portable digest decide.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, TypeVar

import sqlalchemy as sa

from dsdb_plan.checksum import ChecksumMethod, TableFingerprint
from dsdb_plan.dbschema import TableSchema, reflected_columns, usable_from_another_thread
from dsdb_plan.engines import engine_for, same_kind
from dsdb_plan.fingerprint import fingerprint_query
from dsdb_plan.migrate.digest import SubsetDigest
from dsdb_plan.migrate.mask import with_masks
from dsdb_plan.migrate.sql_digest import in_database
from dsdb_plan.migrate.subset import TableSelection, count_rows, select_subset
from dsdb_plan.rows import read_chunks
from dsdb_plan.values import row_converter

_CHUNK_ROWS = 5_000
A = TypeVar("A")
B = TypeVar("B")
#: The verification levels a migration may ask for (`Migration.verify`).
VerifyLevel = Literal["content", "counts"]
CONTENT: VerifyLevel = "content"
COUNTS: VerifyLevel = "counts"
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
    #: `target` is the fingerprint of the whole target table (every column, in table order)
    whole_target: bool = False
    #: Target rows whose key is not in the subset (the source deleted or no longer selects
    #: it), which append and upsert keep: counted when asked (`count_kept`).
    kept: int = 0

    @property
    def counts_only(self) -> bool:
        """Whether only row counts were compared (`verify_counts`), not content."""
        return self.source.method is ChecksumMethod.COUNTED


def subset_digest(
    conn: sa.Connection, selection: TableSelection, *, like: TableFingerprint | None = None
) -> TableFingerprint:
    """The fingerprint of the source rows `selection` copies (its columns, in order).

    Portable unless `like` is a fingerprint by the database's own method (`native_digest`),
    so a fingerprint recorded earlier can be compared with one taken now.
    """
    if like is not None and not is_portable(like):
        return native_digest(conn, selection)
    if selection.mask:
        return _masked_digest(conn, selection)
    return PortableDigest(conn, selection, selection.source)(selection.where)


def _masked_digest(conn: sa.Connection, selection: TableSelection) -> TableFingerprint:
    """The portable digest of the subset as the target holds it: masked, in Python."""
    digest = SubsetDigest(selection.schema, selection.columns)
    add = with_masks(digest.add, selection.schema, selection.masker, selection.mask)
    for chunk in read_chunks(conn, select_subset(selection), _CHUNK_ROWS):
        add(chunk)
    return digest.result()


class PortableDigest:
    """The portable digest of the rows of `table` (the source's or a target's) that match a
    condition, in `selection`'s columns as the source types mean them: taken by the database
    where it can, else streamed through Python. The database is asked once what it can
    digest, however many conditions follow."""

    def __init__(
        self, conn: sa.Connection, selection: TableSelection, table: sa.TableClause | sa.Table
    ) -> None:
        self.conn, self.selection, self.table = conn, selection, table
        self.summer = in_database(conn, table, selection.columns, selection.schema)

    def __call__(self, where: sa.ColumnElement[bool] | None = None) -> TableFingerprint:
        digest = SubsetDigest(self.selection.schema, self.selection.columns)
        self.add_to(digest, where)
        return digest.result()

    def add_to(self, digest: SubsetDigest, where: sa.ColumnElement[bool] | None) -> None:
        """Add the matching rows to `digest`."""
        if self.summer is not None:
            digest.add_total(*self.summer(where))
            return
        # Each value read as the engine reads it for a copy (PostgreSQL's JSON as its text).
        read = engine_for(self.conn.dialect).read_expression
        schema = self.selection.schema
        query = sa.select(
            *(read(self.table.c[name], schema.column(name)) for name in self.selection.columns)
        )
        query = query.where(where) if where is not None else query
        for chunk in read_chunks(self.conn, query, _CHUNK_ROWS):
            digest.add(chunk)


def native_digest(conn: sa.Connection, selection: TableSelection) -> TableFingerprint:
    """The source subset's fingerprint by the source database's own method: comparable only
    with a table of the same kind of database."""
    return fingerprint_query(conn, select_subset(selection), f"the subset of {selection.name}")


def is_portable(fingerprint: TableFingerprint) -> bool:
    return fingerprint.method is ChecksumMethod.PORTABLE


def verify_table(
    source_conn: sa.Connection,
    selection: TableSelection,
    target_conn: sa.Connection,
    target_table: str,
    *,
    exact: bool,
    source: TableFingerprint | None = None,
    count_kept: bool = False,
) -> VerifyResult:
    """Compare `target_table` with the source subset of `selection`, column by column name.

    exact=True (replace, mirror): the whole target table must equal the subset.
    exact=False (append, upsert): only the target rows whose key is in the subset are
    compared, so rows the target holds besides them are ignored (`count_kept`: and
    counted, in `VerifyResult.kept`). Without a key, exact.
    `source` is the subset's digest, portable or native, when the caller already has it
    (taken while copying).
    """
    present = _target_columns(target_conn, target_table)
    missing = _missing(target_table, present, selection.columns)
    if missing:
        if source is None:
            source = subset_digest(source_conn, selection)
        return VerifyResult(
            False, source, TableFingerprint(0, ChecksumMethod.PORTABLE, ""), missing
        )
    target = sa.table(target_table, *(sa.column(name) for name in selection.columns))
    whole = exact or not selection.key
    if whole and same_kind(source_conn.dialect, target_conn.dialect) and not selection.mask:
        known = source if source is not None and not is_portable(source) else None
        native, found = _both(
            source_conn,
            lambda: known or native_digest(source_conn, selection),
            lambda: fingerprint_query(target_conn, sa.select(*target.c), f"table {target_table}"),
        )
        if native == found:
            ok, message = _judge(native, found, target_table, None)
            return VerifyResult(ok, native, found, message, present == list(selection.columns))
    portable = source if source is not None and is_portable(source) else None
    if whole:
        subset, found = _both(
            source_conn,
            lambda: portable or subset_digest(source_conn, selection),
            lambda: PortableDigest(target_conn, selection, target)(),
        )
        return _result(subset, found, target_table, None)
    subset = portable or subset_digest(source_conn, selection)
    found = keyed_digest(source_conn, selection, target_conn, target)
    result = _result(subset, found, target_table, selection.key)
    if not count_kept:
        return result
    held = target_conn.execute(sa.select(sa.func.count()).select_from(target)).scalar_one()
    return dataclasses.replace(result, kept=max(int(held) - found.rows, 0))


def verify_counts(
    source_conn: sa.Connection,
    selection: TableSelection,
    target_conn: sa.Connection,
    target_table: str,
    *,
    exact: bool,
) -> VerifyResult:
    """Compare `target_table` with the source subset of `selection` by row counts alone (a
    migration's `verify: counts`): no value is read. The target must hold as many rows as
    the subset; when it holds more and may (exact=False, with a key: append and upsert keep
    rows the source no longer selects), every key of the subset must be among them, looked
    up by key, and the rows besides are `kept`."""
    source = _counted(count_rows(source_conn, selection))
    present = _target_columns(target_conn, target_table)
    missing = _missing(target_table, present, selection.columns)
    if missing:
        return VerifyResult(False, source, _counted(0), missing)
    target = sa.table(target_table, *(sa.column(name) for name in selection.columns))
    held = int(target_conn.execute(sa.select(sa.func.count()).select_from(target)).scalar_one())
    if held == source.rows or exact or not selection.key or held < source.rows:
        ok, message = _judge_counts(source.rows, held, target_table, None)
        return VerifyResult(ok, source, _counted(held), message)
    found = keyed_count(source_conn, selection, target_conn, target)
    ok, message = _judge_counts(source.rows, found, target_table, selection.key)
    return VerifyResult(ok, source, _counted(found), message, kept=held - found)


def _counted(rows: int) -> TableFingerprint:
    return TableFingerprint(rows, ChecksumMethod.COUNTED, "")


def _judge_counts(
    source: int, target: int, name: str, key: Sequence[str] | None
) -> tuple[bool, str]:
    """Whether the counts agree, and why not in words."""
    by = f" (matched by {', '.join(key)})" if key else ""
    if source == target:
        return True, f"target {name} holds as many rows as the source subset ({_rows(source)}{by})"
    if target < source:
        return False, f"target {name} has {target:,} of {_rows(source)}{by}"
    return False, f"target {name} has {target:,} rows, {target - source:,} more than the " + (
        f"{_rows(source)} of the source subset{by}"
    )


def keyed_count(
    source_conn: sa.Connection,
    selection: TableSelection,
    target_conn: sa.Connection,
    target: sa.TableClause,
) -> int:
    """How many target rows have a key among the source subset's keys."""
    found = 0
    for condition in _key_batches(source_conn, selection, target_conn, target):
        query = sa.select(sa.func.count()).select_from(target).where(condition)
        found += int(target_conn.execute(query).scalar_one())
    return found


def _both(
    source_conn: sa.Connection, of_source: Callable[[], A], of_target: Callable[[], B]
) -> tuple[A, B]:
    """The two sides' digests, taken at once where the source connection may serve another
    thread: each side mostly waits for its own database."""
    if not usable_from_another_thread(source_conn):
        return of_source(), of_target()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsdb-verify") as pool:
        theirs = pool.submit(of_source)
        ours = of_target()
        return theirs.result(), ours


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


def _target_columns(conn: sa.Connection, name: str) -> list[str] | None:
    """The target table's columns in table order, or None when there is no such table."""
    inspector = sa.inspect(conn)
    if not inspector.has_table(name):
        return None
    return [column["name"] for column in reflected_columns(inspector, name)]


def _missing(name: str, present: list[str] | None, columns: Sequence[str]) -> str | None:
    if present is None:
        return f"target table {name} does not exist"
    lacking = [column for column in columns if column not in present]
    if lacking:
        return f"target {name} has no column {', '.join(repr(c) for c in lacking)}"
    return None


def keyed_digest(
    source_conn: sa.Connection,
    selection: TableSelection,
    target_conn: sa.Connection,
    target: sa.TableClause,
    where: sa.ColumnElement[bool] | None = None,
) -> TableFingerprint:
    """The digest of the target rows whose key is among the source subset's keys (those
    of its rows that match `where`, when given)."""
    digest = SubsetDigest(selection.schema, selection.columns)
    found = PortableDigest(target_conn, selection, target)
    for condition in _key_batches(source_conn, selection, target_conn, target, where):
        found.add_to(digest, condition)
    return digest.result()


def _key_batches(
    source_conn: sa.Connection,
    selection: TableSelection,
    target_conn: sa.Connection,
    target: sa.TableClause,
    where: sa.ColumnElement[bool] | None = None,
) -> Iterator[sa.ColumnElement[bool]]:
    """Conditions on the target that select, a batch of keys at a time, its rows whose key
    is among the source subset's keys (those of its rows that match `where`, when given)."""
    key_schema = TableSchema(
        selection.name, tuple(selection.schema.column(name) for name in selection.key)
    )
    # Keys are looked up as the target stores them (SQLite keeps dates as text, ...).
    convert = row_converter(key_schema, source_conn.dialect.name, target_conn.dialect.name)
    convert_rows = with_masks(
        lambda rows: [convert(row) for row in rows], key_schema, selection.masker, selection.mask
    )
    keys = sa.select(*(selection.source.c[name] for name in selection.key))
    for condition in (selection.where, where):
        if condition is not None:
            keys = keys.where(condition)
    for chunk in read_chunks(source_conn, keys, _KEY_BATCH):
        values = convert_rows(chunk)
        if len(selection.key) == 1:
            yield target.c[selection.key[0]].in_([value[0] for value in values])
        else:
            yield sa.tuple_(*(target.c[name] for name in selection.key)).in_(values)


def _rows(count: int) -> str:
    return "1 row" if count == 1 else f"{count:,} rows"
