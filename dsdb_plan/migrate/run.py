"""Run one migration: every selected table in foreign-key order, resumably, verified.

For each table: make sure the target table can hold the data (create it, or add columns
when the schema may evolve), copy it in committed batches with a checkpoint after each,
create its indexes and advance its sequences, then verify the target against the source
subset: its content, or at `verify: counts` its row count (`verify.verify_counts`).
Tables load parents first; a mirror deletes the rows gone from the source only
once every table is loaded, children first, so a parent the source deleted goes after the
rows that pointed at it (issue 12, item 4), and is verified then. The checkpoint names the
finished tables and the tables in progress, so a killed run resumes after the last
committed batch of each. A run asked to stop (`cancel`) starts no more tables and raises
`Interrupted` once each running one has stopped after a committed batch; that checkpoint
is where the next run carries on.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa

from dsdb_plan.archive.format import decode_value, encode_value
from dsdb_plan.checksum import RowDigest, TableFingerprint
from dsdb_plan.dag import run_dag
from dsdb_plan.dbschema import TableSchema
from dsdb_plan.engines import engine_for, same_kind
from dsdb_plan.errors import DsdbError, Interrupted
from dsdb_plan.fingerprint import Fingerprint, change_token, unchanged_since
from dsdb_plan.migrate.copier import CopyResult, Mode, copy_table, validate_keys
from dsdb_plan.migrate.diff import differing_rows
from dsdb_plan.migrate.digest import SubsetDigest
from dsdb_plan.migrate.order import bound, raw
from dsdb_plan.migrate.snapshot import beside
from dsdb_plan.migrate.sql_digest import in_database
from dsdb_plan.migrate.subset import TableSelection
from dsdb_plan.migrate.target import (
    SchemaChanges,
    ensure_target,
    finish_target,
    inspect_target,
)
from dsdb_plan.migrate.verify import (
    CONTENT,
    VerifyLevel,
    native_digest,
    subset_digest,
    verify_counts,
    verify_table,
)

EXACT_MODES = ("replace", "mirror")
#: Modes that copy into the target table itself, by key: a resync copies what differs.
DIFFABLE_MODES = ("append", "upsert", "mirror")


@dataclass(frozen=True)
class TableRun:
    """How to copy one selected table."""

    selection: TableSelection
    mode: Mode
    cursor: str | None = None
    since: Any = None

    @property
    def exact(self) -> bool:
        """Whether the target table must hold exactly the subset (nothing else) afterwards."""
        return self.mode in EXACT_MODES and self.cursor is None

    def copied(self, high_water: Any) -> TableSelection:
        """What verification compares with the source after a copy, by the mode's promise:
        the whole subset; for append, which leaves the rows the target holds alone, only
        that every key is there; for an incremental copy, only the rows it copied (cursor
        past `since`, up to `high_water`), as rows changed without moving their cursor are
        left behind by design."""
        checked = self._promised()
        if self.cursor is None:
            return checked
        cursor = raw(checked.source.c[self.cursor])
        window = cursor <= bound(high_water)
        if self.since is not None:
            window = sa.and_(cursor > bound(self.since), window)
        return checked.restricted(window)

    def recorded(self) -> TableSelection:
        """What `dsdb verify` compares with the source: as after a copy, but for an
        incremental copy, that every row up to the cursor recorded last (`since`) is there,
        whatever its content since."""
        checked = self._promised()
        if self.cursor is None:
            return checked
        checked = checked.narrowed(checked.key)
        if self.since is None:
            return checked.restricted(sa.false())  # nothing copied yet
        return checked.restricted(raw(checked.source.c[self.cursor]) <= bound(self.since))

    def _promised(self) -> TableSelection:
        selection = self.selection
        return selection.narrowed(selection.key) if self.mode == "append" else selection

    @property
    def copies_differences(self) -> bool:
        """Whether, into a table the target holds already, only the key ranges that differ
        are copied (`diff.py`)."""
        selection = self.selection
        # A NULL in a key falls in no key range, so such a row would never be compared.
        nullable = any(selection.schema.column(name).nullable for name in selection.key)
        return (
            self.mode in DIFFABLE_MODES
            and self.cursor is None
            and bool(selection.key)
            and not nullable
            and not selection.mask  # masked rows differ from the source in every range
        )


@dataclass(frozen=True)
class Written:
    """What one run wrote to a table: the rows it copied (append: inserted), the rows it
    deleted, and whether it copied only the key ranges that differed (`diff.py`)."""

    rows: int = 0
    deleted: int = 0
    differences_only: bool = False
    #: Seconds spent verifying beyond copying: waiting for the source's digest taken beside
    #: the copy, digesting the target and comparing (a cost, not an outcome).
    verifying: float = dataclasses.field(default=0.0, compare=False)


@dataclass(frozen=True)
class TableOutcome:
    """What copying one table did, and the fingerprints verification took of it.

    `rows_copied` and `rows_deleted` count the table's whole copy, across the runs that
    resumed it; `now` only what this run wrote (nothing, for a table an earlier run
    finished, which a checkpoint gives back).
    """

    table: str
    target: str
    rows_copied: int
    rows_deleted: int
    high_water: Any
    subset: TableFingerprint | None = None  # None in checkpoints written before it was kept
    #: The whole target table's fingerprint with the change token taken just before it was
    #: read, as `fingerprint_database` would give it: for a database with a change token
    #: (SQLite), whose tables and queries are fingerprinted alike. None otherwise.
    written: Fingerprint | None = None
    now: Written = Written()

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "target": self.target,
            "rows_copied": self.rows_copied,
            "rows_deleted": self.rows_deleted,
            "high_water": encode_value(self.high_water),
            "subset": self.subset.to_dict() if self.subset else None,
            "written": self.written.to_dict() if self.written else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableOutcome:
        subset, written = data.get("subset"), data.get("written")
        return cls(
            data["table"],
            data["target"],
            int(data["rows_copied"]),
            int(data["rows_deleted"]),
            decode_value(data["high_water"]),
            TableFingerprint.from_dict(subset) if subset else None,
            Fingerprint.from_dict(written) if written else None,
        )


Checkpoint = dict[str, Any]
ProgressFn = Callable[[str, int], None]
"""progress(table, rows_so_far)"""


def run_migration(
    source: sa.Engine,
    target: sa.Engine,
    runs: Sequence[TableRun],
    *,
    batch_size: int,
    schema_changes: SchemaChanges,
    parallelism: int = 1,
    resume: Mapping[str, Any] | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    progress: ProgressFn | None = None,
    source_fingerprint: Fingerprint | None = None,
    cancel: threading.Event | None = None,
    created: Collection[str] = (),
    verify: VerifyLevel = CONTENT,
) -> list[TableOutcome]:
    """Copy every table of `runs` and verify each; return what was done, in `runs` order.

    `runs` come parents first. Up to `parallelism` tables copy at once (one into a SQLite
    target, which takes a single writer), each starting once the tables it references are
    loaded (their verification may still be running). `resume` is the last checkpoint of
    an interrupted run of the same migration: tables it lists as done are skipped, tables in
    progress continue after their last batch.
    `source_fingerprint` is the source's, taken before copying: verification reuses it for
    a whole table the source provably did not change since.
    Setting `cancel` stops the run at the running tables' next committed batches; so does a
    KeyboardInterrupt in the calling thread (a notebook's interrupt), which is raised then.
    `created` names the target tables dsdb created before (the record keeps them): as those
    this run creates, they get their indexes and keys; a table of the user's keeps its own.
    `verify` is the migration's verification level: content, or counts.
    """
    done = {
        name: TableOutcome.from_dict(outcome)
        for name, outcome in (resume or {}).get("done", {}).items()
    }
    running: dict[str, Checkpoint] = dict((resume or {}).get("running", {}))
    #: Target tables dsdb created, before or in this run (or the run it resumes).
    ours = {*created, *(resume or {}).get("created", [])}
    # A checkpoint from before dsdb kept that list: as then, every table gets them.
    unlisted = resume is not None and "created" not in resume
    known = {run.selection.name: run.selection.target for run in runs}
    lock = threading.Lock()
    stop = cancel if cancel is not None else threading.Event()

    def report() -> None:  # called with `lock` held
        if on_checkpoint is not None:
            on_checkpoint(
                {
                    "done": {n: o.to_dict() for n, o in done.items()},
                    "running": dict(running),
                    "created": sorted(ours),
                }
            )

    def copy(run: TableRun, on_loaded: Callable[[], None]) -> None:
        name = run.selection.name
        if stop.is_set():
            raise Interrupted(f"table {name!r}: not started, as the run was asked to stop")

        def mark_created() -> None:
            with lock:
                ours.add(run.selection.target)
                report()

        outcome = _copy_one(
            source,
            target,
            run,
            batch_size=batch_size,
            schema_changes=schema_changes,
            known=known,
            resume=running.get(name),
            read=source_fingerprint,
            on_checkpoint=saver(name),
            created=unlisted or run.selection.target in ours,
            on_create=mark_created,
            on_loaded=on_loaded,
            progress=(lambda rows: progress(name, rows)) if progress else None,
            cancel=stop,
            cleared_later=cleared_after[name],
            verify=verify,
        )
        if isinstance(outcome, _Loaded):
            loaded[name] = outcome
        else:
            finish(name, outcome)

    def finish(name: str, outcome: TableOutcome) -> None:
        with lock:
            done[name] = outcome
            running.pop(name, None)
            report()

    def saver(name: str) -> Callable[[Checkpoint], None]:
        def save(state: Checkpoint) -> None:
            with lock:
                running[name] = state
                report()

        return save

    single_writer = engine_for(target.dialect).capabilities.single_writer
    workers = 1 if single_writer else max(1, parallelism)
    todo = [run for run in runs if run.selection.name not in done]
    # Target tables replaced or mirrored after each table: their keys to it may be put
    # back unchecked (and are checked once mirrored).
    cleared_after = {
        run.selection.name: {
            later.selection.target for later in runs[i + 1 :] if later.mode in EXACT_MODES
        }
        for i, run in enumerate(runs)
    }
    replaced = {run.selection.target for run in runs if run.mode == "replace"}
    loaded: dict[str, _Loaded] = {}
    _schedule(todo, copy, workers, stop)
    # Mirrors delete once every table is loaded, children first: a parent row the source
    # deleted goes after the target rows pointing at it went or moved to another parent.
    for run in reversed(todo):
        name = run.selection.name
        if name not in loaded:
            continue
        if stop.is_set():
            raise Interrupted(
                f"table {name!r}: loaded, not yet cleared of rows gone from the source, as "
                "the run was asked to stop; the next apply does it"
            )
        outcome = _delete_and_verify(
            source,
            target,
            run,
            loaded[name],
            batch_size=batch_size,
            resume=running.get(name),
            read=source_fingerprint,
            on_checkpoint=saver(name),
            verify=verify,
        )
        validate_keys(target, run.selection.target, replaced)
        finish(name, outcome)
    return [done[run.selection.name] for run in runs]


Copy = Callable[[TableRun, Callable[[], None]], None]
"""copy(run, on_loaded): copies and verifies one table, calling on_loaded() in between"""


def _schedule(runs: Sequence[TableRun], copy: Copy, workers: int, stop: threading.Event) -> None:
    """Run `copy` for each table once the earlier tables it references are loaded.

    Loaded means their rows are in, verified or not yet: one table's verification overlaps
    the copy of the tables that reference it. Only references to tables earlier in `runs`
    count, so a foreign-key cycle (ordered by name) cannot deadlock. The first failure stops
    new starts and is raised once the tables already running have finished. An exception in
    this thread (KeyboardInterrupt) sets `stop`, so they finish at their next committed
    batch, and is raised then.
    """
    by_name = {run.selection.name: run for run in runs}
    order = {name: i for i, name in enumerate(by_name)}
    needs = {
        name: sorted(
            {
                fk.ref_table
                for fk in run.selection.schema.foreign_keys
                if order.get(fk.ref_table, len(runs)) < order[name]
            }
        )
        for name, run in by_name.items()
    }
    unstarted: list[str] = []
    run_dag(
        list(by_name),
        needs,
        lambda name, on_loaded: copy(by_name[name], on_loaded),
        lambda name, _: True,
        workers=workers,
        cancel=stop,
        fail_fast=True,
        on_unstarted=unstarted.append,
    )
    if unstarted:
        raise Interrupted(f"table {unstarted[0]!r}: not started, as the run was asked to stop")


def _copy_one(
    source: sa.Engine,
    target: sa.Engine,
    run: TableRun,
    *,
    batch_size: int,
    schema_changes: SchemaChanges,
    known: Mapping[str, str],
    resume: Mapping[str, Any] | None,
    read: Fingerprint | None,
    on_checkpoint: Callable[[Checkpoint], None],
    created: bool,
    on_create: Callable[[], None],
    on_loaded: Callable[[], None],
    progress: Callable[[int], None] | None,
    cancel: threading.Event,
    cleared_later: Collection[str],
    verify: VerifyLevel,
) -> TableOutcome | _Loaded:
    """Copy and verify one table. `created`: whether the run this one resumes created the
    target table; `on_create` is called (and saved) before this one creates it. A mirror
    stops once loaded (`_Loaded`): its deletion and verification come after every table's
    load (`run_migration`)."""
    selection = run.selection
    check = inspect_target(target, selection, schema_changes=schema_changes, source=source)
    if not check.exists:
        on_create()
    ensure_target(target, selection, check, known_tables=known)
    only = _changed_rows(source, target, run, batch_size) if check.exists and not resume else None
    # Append skips the keys the target holds: what it inserted is what the table gained.
    held = _count(target, selection.target) if run.mode == "append" else None
    native = same_kind(source.dialect, target.dialect)
    # A whole, fresh read of the subset digests what it copies, so verification reads only
    # the target back.
    # Masked rows are digested by verification, through the masks; counts need no digest.
    whole = resume is None and run.cursor is None and only is None and not selection.mask
    whole = whole and verify == CONTENT
    copied = _CopiedDigest(selection, native=native) if whole else None
    result = copy_table(
        source,
        target,
        selection,
        mode=run.mode,
        batch_size=batch_size,
        cursor_column=run.cursor,
        since=run.since,
        resume=resume,
        on_checkpoint=on_checkpoint,
        progress=progress,
        on_source_rows=copied.add_rows if copied else None,
        on_source_snapshot=copied.take_in_database if copied else None,
        on_source_digest=copied.add_digested if copied and not native else None,
        only=only,
        cancel=cancel,
        delete=False,
        cleared_later=cleared_later,
    )
    finish_target(target, selection, known_tables=known, created=created or not check.exists)
    on_loaded()
    waited = time.perf_counter()
    seen = copied.result(result.rows_copied) if copied else None
    waited = time.perf_counter() - waited
    rows = result.rows_now if held is None else _count(target, selection.target) - held
    now = Written(rows, differences_only=only is not None, verifying=waited)
    if run.mode == "mirror":
        return _Loaded(result, seen, now)
    return _verified(source, target, run, result, seen, read, now, verify)


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(sa.table(table))).scalar_one()
        )


@dataclass(frozen=True)
class _Loaded:
    """A mirrored table whose rows are in, and the digest of the source rows it read."""

    result: CopyResult
    seen: TableFingerprint | None
    now: Written


def _delete_and_verify(
    source: sa.Engine,
    target: sa.Engine,
    run: TableRun,
    loaded: _Loaded,
    *,
    batch_size: int,
    resume: Mapping[str, Any] | None,
    read: Fingerprint | None,
    on_checkpoint: Callable[[Checkpoint], None],
    verify: VerifyLevel,
) -> TableOutcome:
    """Finish a mirrored table `_copy_one` loaded: delete the target rows gone from the
    subset (resuming from its "delete" checkpoint), then verify."""
    result = copy_table(
        source,
        target,
        run.selection,
        mode=run.mode,
        batch_size=batch_size,
        cursor_column=run.cursor,
        since=run.since,
        resume=resume,
        on_checkpoint=on_checkpoint,
    )
    now = dataclasses.replace(loaded.now, deleted=result.rows_deleted)
    return _verified(source, target, run, result, loaded.seen, read, now, verify)


def _verified(
    source: sa.Engine,
    target: sa.Engine,
    run: TableRun,
    result: CopyResult,
    seen: TableFingerprint | None,
    read: Fingerprint | None,
    now: Written,
    verify: VerifyLevel,
) -> TableOutcome:
    """Verify a copied table against its source subset; `seen` is the digest of the source
    rows the copy read, when it took one; `now` what this run wrote."""
    started = time.perf_counter()
    selection = run.selection
    if verify != CONTENT:
        return _counts_verified(source, target, run, result, now, started)
    native = same_kind(source.dialect, target.dialect)
    if seen is None and native and selection.whole_table:
        unchanged = unchanged_since(source, read, [selection.name])
        seen = unchanged.tables[selection.name] if unchanged else None
    checked = run.copied(result.high_water)
    if checked is not selection:  # the digest taken while copying covers other rows or columns
        seen = None
    token = change_token(target)  # before verification reads the target
    with source.connect() as source_conn, target.connect() as target_conn:
        # Comparing whole tables is cheaper than looking rows up by key, and usually holds:
        # a target with no rows besides the subset. Only when it does not, look up by key;
        # at once for an incremental copy, whose rows are a few of the target's.
        whole_first = run.cursor is None
        verdict = verify_table(
            source_conn, checked, target_conn, selection.target, exact=whole_first, source=seen
        )
        if not verdict.ok and whole_first and not run.exact:
            verdict = verify_table(
                source_conn,
                checked,
                target_conn,
                selection.target,
                exact=False,
                source=verdict.source,
            )
    if not verdict.ok:
        raise DsdbError(
            f"verification failed for {selection.name} → {selection.target}: {verdict.message}"
        )
    return TableOutcome(
        selection.name,
        selection.target,
        result.rows_copied,
        result.rows_deleted,
        result.high_water,
        verdict.source if checked is selection else None,
        Fingerprint({selection.target: verdict.target}, token)
        if verdict.whole_target and token is not None
        else None,
        dataclasses.replace(now, verifying=now.verifying + time.perf_counter() - started),
    )


def _counts_verified(
    source: sa.Engine,
    target: sa.Engine,
    run: TableRun,
    result: CopyResult,
    now: Written,
    started: float,
) -> TableOutcome:
    """Verify a copied table by row counts alone (`verify: counts`): the outcome holds no
    fingerprint, as no content was read."""
    selection = run.selection
    with source.connect() as source_conn, target.connect() as target_conn:
        verdict = verify_counts(
            source_conn,
            run.copied(result.high_water),
            target_conn,
            selection.target,
            exact=run.exact,
        )
    if not verdict.ok:
        raise DsdbError(
            f"verification (counts only) failed for {selection.name} → {selection.target}: "
            f"{verdict.message}"
        )
    return TableOutcome(
        selection.name,
        selection.target,
        result.rows_copied,
        result.rows_deleted,
        result.high_water,
        now=dataclasses.replace(now, verifying=now.verifying + time.perf_counter() - started),
    )


def _changed_rows(
    source: sa.Engine, target: sa.Engine, run: TableRun, size: int
) -> sa.ColumnElement[bool] | None:
    """For a table the target holds already, the source rows of the key ranges that differ
    there (`diff.py`); None to copy the whole subset."""
    if not run.copies_differences:
        return None
    with source.connect() as source_conn, target.connect() as target_conn:
        return differing_rows(
            source_conn,
            run.selection,
            target_conn,
            size,
            keeps_target_rows=run.mode not in EXACT_MODES,
        )


class _CopiedDigest:
    """The digest of the source rows a copy reads: taken by the source database, in the
    snapshot the copy reads, where it can; else from the rows as they stream by.

    Into a database of the same kind it is the source's own fingerprint (`native_digest`),
    which verification compares first; otherwise the portable digest.
    """

    def __init__(self, selection: TableSelection, *, native: bool) -> None:
        self.selection = selection
        self.native = native
        self.digest = SubsetDigest(selection.schema, selection.columns)
        self.rows = RowDigest()
        self.taken: TableFingerprint | None = None
        self.pending: Future[TableFingerprint] | None = None

    def take_in_database(self, conn: sa.Connection) -> None:
        if engine_for(conn.dialect).registration.embedded:
            # In-process either way: its rows are hashed as they stream by, with no second read.
            return
        take = self._native if self.native else self._portable
        if not self.native and in_database(conn, *self._columns()) is None:
            return  # columns the database cannot digest: hashed as they stream by
        # Beside the copy where the database can share its snapshot, else before it.
        self.pending = beside(conn, take)
        if self.pending is None:
            self.taken = take(conn)

    def _columns(self) -> tuple[sa.Table, Sequence[str], TableSchema]:
        return self.selection.source, self.selection.columns, self.selection.schema

    def _native(self, conn: sa.Connection) -> TableFingerprint:
        return native_digest(conn, self.selection)

    def _portable(self, conn: sa.Connection) -> TableFingerprint:
        return subset_digest(conn, self.selection)

    def add_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        if self.taken is not None or self.pending is not None:
            return
        if self.native:
            # Only SQLite sources get here: pysqlite's own tuples of raw values, as its
            # fingerprint reads them.
            self.rows.add(cast(Sequence[tuple[Any, ...]], rows))
        else:
            self.digest.add(rows)

    def add_digested(self, rows: int, total: int) -> None:
        """Add rows the copy digested itself (`arrow_copy.py`), as their count and hash sum."""
        self.digest.add_total(rows, total)

    def result(self, rows_copied: int) -> TableFingerprint | None:
        if self.pending is not None:
            return self.pending.result()
        if self.taken is not None:
            return self.taken
        digest = self.rows.result() if self.native else self.digest.result()
        # Rows copied without passing through Python (SQLite to SQLite) left it short.
        return digest if digest.rows == rows_copied else None
