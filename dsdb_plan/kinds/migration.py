"""migration.<name>: the target holds this subset of the source, kept in step.

Plan: per table, the rows that would be copied and what changed — in the source since the
last apply, and in the target outside dsdb (drift). No record -> create; spec changed ->
update; source or target changed -> resync; otherwise no-op. Replacing a target table that
holds data, or mirroring into one (deletes rows), is destructive. A migration at `verify:
counts` proves row counts instead of content, which its plan and apply say; raising it to
content is an update that compares every table with the source (`decide`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import sqlalchemy as sa

from dsdb_plan.archive.format import decode_value
from dsdb_plan.checksum import TableFingerprint
from dsdb_plan.connection import Connection
from dsdb_plan.databases import row_counts
from dsdb_plan.engines import engine_for
from dsdb_plan.errors import PlanError, note_rows_committed
from dsdb_plan.fingerprint import (
    Fingerprint,
    changed_tables,
    count_tables,
    describe_changes,
    fingerprint_database,
)
from dsdb_plan.kinds.base import (
    ApplyContext,
    ForgettingKind,
    Handler,
    Outcome,
    PlanContext,
    digest,
    make_record,
    refuse_if_protected,
    refuse_moved,
    spec_document,
    without_defaults,
)
from dsdb_plan.kinds.upstream import copies_beyond, tables_after, written_by
from dsdb_plan.migrate.copier import check_table
from dsdb_plan.migrate.estimate import RowCount, rows_to_copy
from dsdb_plan.migrate.filters import compile_where
from dsdb_plan.migrate.integrity import (
    count_dangling,
    enforced_in_target,
    refusal,
    resolved_only,
    without_keys,
)
from dsdb_plan.migrate.mask import Masker, unmasked_sensitive
from dsdb_plan.migrate.run import TableOutcome, TableRun, Written, run_migration
from dsdb_plan.migrate.subset import TableSelection, count_rows, select_tables
from dsdb_plan.migrate.target import (
    MISFIT_REMEDY,
    ROUNDED_REMEDY,
    TargetCheck,
    inspect_target,
    keys_left_out,
    misfit_values,
    rounded_decimals,
    unheld_columns,
)
from dsdb_plan.migrate.text_copy import text_copy_note
from dsdb_plan.migrate.verify import (
    CONTENT,
    COUNTS,
    VerifyLevel,
    VerifyResult,
    subset_digest,
    verify_counts,
    verify_table,
)
from dsdb_plan.models import Manifest, Migration
from dsdb_plan.payloads import (
    DELETING_MODES,
    CopyTables,
    Dangling,
    Payload,
    RecordSettings,
    Spec,
    TableCopy,
    Unchanged,
)
from dsdb_plan.plan import Action, ActionType, counted
from dsdb_plan.references import parse_references
from dsdb_plan.specdiff import spec_changes
from dsdb_plan.state import ResourceRecord
from dsdb_plan.workspace import Workspace

KIND = "migration"


def declared_references(spec: Migration, source: Connection) -> dict[str, str]:
    """The references the manifest declares for this migration's source: the source
    connection's, and the migration's own (which win for the same columns)."""
    return {**(source.references or {}), **(spec.references or {})}


def selections(engine: sa.Engine, spec: Migration, workspace: Workspace) -> list[TableSelection]:
    """The source tables this migration copies, parents first, with their filters (under
    `on_dangling: skip`, only the rows whose references resolve)."""
    return _with_policy(_source_tables(engine, spec, workspace), spec, engine.dialect)


def _source_tables(
    engine: sa.Engine, spec: Migration, workspace: Workspace
) -> list[TableSelection]:
    """The tables as `select_tables` chooses them, typed for the target's engine. The
    source connection's references count too."""
    source = workspace.connection(spec.source)
    name = f"the source database '{spec.source}'"
    seed = spec.mask_seed.get_secret_value() if spec.mask_seed else None
    return select_tables(
        engine,
        spec.table_options(),
        spec.follow,
        source_name=name,
        references=parse_references(declared_references(spec, source)),
        mask=spec.mask,
        masker=Masker(seed) if seed is not None else None,
        into=engine_for(workspace.connection(spec.target).dialect),
    )


def migration_document(manifest: Manifest, spec: Migration) -> dict[str, Any]:
    """The spec as recorded: with every reference it follows, the source connection's too,
    since changing them changes the subset."""
    document = _without_unset(spec_document(manifest, spec, [spec.source, spec.target]))
    references = declared_references(spec, manifest.connections[spec.source])
    if references:
        document["references"] = references
    if spec.mask_seed is not None:
        # Another seed masks every value otherwise: a change to record, never the seed.
        secret = spec.mask_seed.get_secret_value()
        document["mask_seed"] = hashlib.sha256(f"dsdb-mask-seed\0{secret}".encode()).hexdigest()[
            :12
        ]
    return document


#: Fields recorded only when they differ from their default, so that the records of
#: migrations that use none of them read the same as before these fields existed.
_DEFAULTS: dict[str, Any] = {
    "references": None,
    "mask": None,
    "mask_seed": None,
    "on_dangling": "refuse",
    "verify": CONTENT,
}
_UNSET_TABLE_FIELDS = ("sample", "mask")


def _without_unset(document: dict[str, Any]) -> dict[str, Any]:
    without_defaults(document, _DEFAULTS)
    tables = document.get("tables")
    for options in tables.values() if isinstance(tables, dict) else ():
        for name in _UNSET_TABLE_FIELDS if isinstance(options, dict) else ():
            if options.get(name) is None:
                options.pop(name, None)
    return document


def refuse_unmasked(
    manifest: Manifest, address: str, spec: Migration, chosen: list[TableSelection]
) -> None:
    """A target with `requires_masking` takes no column its source names `sensitive`
    unmasked."""
    if not manifest.connections[spec.target].requires_masking:
        return
    sensitive = manifest.connections[spec.source].sensitive or []
    copied = {selection.name: selection.columns for selection in chosen}
    masks = {selection.name: selection.mask for selection in chosen}
    bare = unmasked_sensitive(sensitive, copied, masks)
    if bare:
        raise PlanError(
            f"{address}: connection '{spec.target}' requires masking, and this migration "
            f"copies {', '.join(bare)} unmasked ('{spec.source}' names them sensitive): "
            "mask them under mask:"
        )


def _with_policy(
    chosen: list[TableSelection], spec: Migration, dialect: sa.Dialect
) -> list[TableSelection]:
    return resolved_only(chosen, dialect) if spec.on_dangling == "skip" else chosen


def dangling_references(
    source: sa.Engine, spec: Migration, address: str, raw: list[TableSelection]
) -> list[Dangling]:
    """The dangling references of the subset `raw` (`_source_tables`), refused unless the
    migration's policy takes them: `skip` must leave none behind."""
    with source.connect() as conn:
        dangling = count_dangling(conn, raw)
        if dangling and spec.on_dangling == "refuse":
            raise PlanError(refusal(dangling, address))
        left = (
            count_dangling(conn, resolved_only(raw, conn.dialect))
            if spec.on_dangling == "skip"
            else []
        )
    if left:
        raise PlanError(
            f"{address}: on_dangling: skip cannot leave out every dangling row: after it, "
            + "; ".join(d.describe() for d in left)
            + " (rows pointing at skipped rows of their own table or of a reference cycle)"
        )
    return dangling


def table_runs(
    spec: Migration, chosen: list[TableSelection], record: ResourceRecord | None
) -> list[TableRun]:
    """Mode, cursor and high-water mark for each table, from the spec and the last apply."""
    options = spec.table_options() or {}
    high_water = record.fingerprints.get("high_water", {}) if record else {}
    runs = []
    for selection in chosen:
        table = options.get(selection.name)
        cursor = table.incremental.cursor if table and table.incremental else None
        since = (
            decode_value(high_water[selection.name])
            if cursor and selection.name in high_water
            else None
        )
        mode = (table.mode if table and table.mode else None) or spec.mode
        runs.append(TableRun(selection, mode, cursor, since))
    return runs


def unchanged_tables(runs: Sequence[TableRun], moved: Collection[str]) -> list[str]:
    """The tables a resync can leave as they are (pure): whole tables (a filtered table's
    rows may follow other tables') that are not among the `moved` source and target tables,
    and none of whose parents the resync replaces or mirrors, which may delete rows they
    point at."""

    moved = set(moved)

    def still(run: TableRun) -> bool:
        selection = run.selection
        return selection.where is None and not {selection.name, selection.target} & moved

    deleting = {run.selection.name for run in runs if run.mode in DELETING_MODES and not still(run)}
    return [
        run.selection.name
        for run in runs
        if still(run) and not {fk.ref_table for fk in run.selection.schema.foreign_keys} & deleting
    ]


def unchanged_moved(unchanged: Sequence[str], planned: Fingerprint, now: Fingerprint) -> list[str]:
    """The tables a plan left as they were that have changed since it read them (pure)."""
    return [
        f"source table {name} changed since the plan, which left it as it was"
        for name in unchanged
        if now.tables.get(name) != planned.tables.get(name)
    ]


def _recorded(
    record: ResourceRecord | None, kind: str, tables: Collection[str]
) -> dict[str, TableFingerprint]:
    """The fingerprints of `tables` the record holds under `kind`."""
    if record is None or not tables:
        return {}
    recorded = Fingerprint.from_dict(record.fingerprints[kind]).tables
    return {name: recorded[name] for name in tables if name in recorded}


_DATA_FIELDS = (
    "from",
    "to",
    "mode",
    "follow",
    "tables",
    "schema",
    "links",
    "references",
    "mask",
    "mask_seed",
)


def _rows_in(checkpoint: Mapping[str, Any] | None) -> int:
    """The rows a migration's checkpoint counts as committed: of finished and running tables."""
    if not checkpoint:
        return 0
    done = sum(int(outcome["rows_copied"]) for outcome in checkpoint.get("done", {}).values())
    return done + sum(int(state.get("rows", 0)) for state in checkpoint.get("running", {}).values())


def resume_note(checkpoint: Mapping[str, Any]) -> str:
    """The plan line for an interrupted apply it resumes: the tables it finished, and the
    rows of each table it was copying that are in already."""
    done = counted(len(checkpoint.get("done", {})), "table")
    running = sorted(checkpoint.get("running", {}).items())
    rows = "".join(
        f", {counted(int(state.get('rows', 0)), 'row')} of {name} already in"
        for name, state in running
    )
    return f"resuming an interrupted apply: {done} already copied{rows}"


def deletion_note(mode: str, table: str, held: int, copied: RowCount | None) -> str:
    """What replace or mirror (`mode`) deletes of the `held` rows of target `table`."""
    if mode == "replace":
        return f"replace deletes the {counted(held, 'row')} of {table} and loads the subset"
    # A bound from the subset's count only when it was counted, not estimated.
    exact = copied is not None and not copied.estimated and held > copied.rows
    gone = f"; at least {held - copied.rows:,} of them" if exact and copied else ""
    return f"mirror deletes the rows of {table} that are not in the subset ({held:,} held{gone})"


def data_digest(document: dict[str, Any]) -> str:
    """A digest of the spec fields that decide which data lands where (not batch size,
    dependencies or descriptions): a change here means copying again from scratch."""
    fields = {name: document.get(name) for name in _DATA_FIELDS}
    # The default policy copies what specs recorded before it existed did: same digest.
    if document.get("on_dangling", "refuse") != "refuse":
        fields["on_dangling"] = document["on_dangling"]
    return digest(fields)


def _subset_fingerprint(
    source: sa.Engine, selection: TableSelection, like: TableFingerprint | None = None
) -> TableFingerprint:
    with source.connect() as conn:
        return subset_digest(conn, selection, like=like)


def _verified_target(outcomes: list[TableOutcome]) -> Fingerprint | None:
    """The target tables' fingerprints that verification took, under the change token taken
    before the last of them was read: reused when the target did not change since. Tables
    are copied into a target with such a token one at a time, in this order."""
    written = [outcome.written for outcome in outcomes if outcome.written is not None]
    if not written or len(written) < len(outcomes):
        return None
    tables = {name: table for each in written for name, table in each.tables.items()}
    return Fingerprint(tables, written[-1].token)


@dataclass(frozen=True)
class TableVerdict:
    """How one migrated table compares with its source subset."""

    address: str
    table: str
    target: str
    result: VerifyResult
    mode: str


def verify_migration(
    workspace: Workspace,
    address: str,
    spec: Migration,
    record: ResourceRecord | None,
    level: VerifyLevel | None = None,
) -> Iterator[TableVerdict]:
    """Compare every table of one migration's target with its source subset, at `level`
    (default: the migration's own `verify`)."""
    counts = (level or spec.verify) == COUNTS
    source = workspace.reach(spec.source)
    target = workspace.reach(spec.target)
    chosen = selections(source, spec, workspace)
    for run in table_runs(spec, chosen, record):
        selection = run.selection
        with source.connect() as source_conn, target.connect() as target_conn:
            if counts:
                result = verify_counts(
                    source_conn, run.recorded(), target_conn, selection.target, exact=run.exact
                )
            else:
                result = verify_table(
                    source_conn,
                    run.recorded(),
                    target_conn,
                    selection.target,
                    exact=run.exact,
                    count_kept=True,
                )
        into = f"{spec.target}.{selection.target}"
        yield TableVerdict(address, selection.name, into, result, run.mode)


def decide(
    address: str,
    record: ResourceRecord | None,
    document: Spec,
    changes: list[str],
    left_behind: list[str],
    resume: str | None = None,
) -> Action | tuple[ActionType, list[str]]:
    """What kind of change a migration's plan is, with its first reasons, from its record,
    its spec and what changed in the data since the last apply (`changes`: source and
    target lines); or the whole action when nothing is to be copied (pure). `left_behind`:
    the target tables a changed spec no longer writes; `resume`: the line of an interrupted
    apply this one resumes (so never a no-op)."""
    first = [resume] if resume else []
    if record is None:
        return ActionType.CREATE, first
    if data_digest(record.spec) != data_digest(document):
        return ActionType.UPDATE, [*first, *spec_changes(record.spec, document), *left_behind]
    if verify_level(record.spec) == COUNTS and verify_level(document) == CONTENT:
        # The content was never compared: it is now, and what differs is copied again.
        others = [
            line for line in spec_changes(record.spec, document) if not line.startswith("verify:")
        ]
        return ActionType.UPDATE, [
            *first,
            "verify: counts → content: the last apply compared row counts only; this one "
            "compares every table's content with the source, copying again what differs",
            *others,
            *changes,
        ]
    if changes or resume:
        return ActionType.RESYNC, [*first, *changes]
    unchanged = ["source and target unchanged since the last apply"]
    if record.spec == document:
        return Action.on(address, KIND, ActionType.NOOP, Unchanged(document), reasons=unchanged)
    # Only settings that do not touch the data changed: record them, copy nothing.
    return Action.on(
        address,
        KIND,
        ActionType.UPDATE,
        RecordSettings(document),
        reasons=[*spec_changes(record.spec, document), *unchanged],
    )


def verify_level(document: Spec) -> VerifyLevel:
    """The verification level a recorded or planned spec asks for (recorded when not the
    default)."""
    return COUNTS if document.get("verify") == COUNTS else CONTENT


def verification_note(document: Spec) -> str | None:
    """The plan line that says a copy is verified by row counts alone; None for content,
    the default, which goes without saying."""
    if verify_level(document) == CONTENT:
        return None
    return (
        "verify: counts — each table's row count is compared with the source subset's, "
        "not its content (changes to the source are still detected)"
    )


def _digested_while_copying(ctx: PlanContext, spec: Migration) -> bool:
    """Whether a first copy can plan on row counts alone: from a file database, whose
    content only Python can checksum (a read of every row), into another kind of database,
    where verification digests the rows as the copy reads them and never compares the plan's
    read. The record then holds the counts and each table's token (`count_tables`): the next
    plan reuses them while the source's token holds, and reads again only the tables whose
    own token moved, as possible changes (`describe_changes`)."""
    source = engine_for(ctx.workspace.connection(spec.source).dialect)
    target = engine_for(ctx.workspace.connection(spec.target).dialect)
    return source.registration.embedded and source is not target


class MigrationKind(ForgettingKind):
    left_behind = "copied data stays"

    def plan(
        self, ctx: PlanContext, address: str, spec: Migration, record: ResourceRecord | None
    ) -> list[Action]:
        document = migration_document(ctx.manifest, spec)
        writers = ctx.written_before(address, spec.source)
        if writers:
            return [self._after_writers(ctx, address, spec, record, document, writers)]
        if ctx.is_missing(spec.source):
            link = ctx.workspace.connection(spec.source).link
            raise PlanError(f"source database {spec.source} ({link}) does not exist")
        same_data = record is not None and data_digest(record.spec) == data_digest(document)
        previous = Fingerprint.from_dict(record.fingerprints["read"]) if record else None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsdb-drift") as pool:
            # The target is read for drift while the source is reflected and read for changes.
            drift = (
                pool.submit(self._drift, ctx, spec, record)
                if record is not None and same_data
                else None
            )
            source = ctx.workspace.reach(spec.source)
            raw = _source_tables(source, spec, ctx.workspace)
            chosen = _with_policy(raw, spec, source.dialect)
            names = [s.name for s in chosen]
            # A first copy verified by counts never compares the plan's read of the source.
            counted_only = _digested_while_copying(ctx, spec) or spec.verify == COUNTS
            live = (
                count_tables(source, names)
                if record is None and counted_only
                else ctx.fingerprint(spec.source, names, previous=previous)
            )
            drifted, in_target = drift.result() if drift else ([], Fingerprint({}))
        checkpoint = ctx.snapshot.checkpoints.get(address)
        resuming = checkpoint is not None and checkpoint.get("spec_digest") == data_digest(document)
        # An apply that did not finish wrote to the target too: the change is not known to
        # have come from outside.
        by = "since the last finished apply" if checkpoint is not None else "outside dsdb"
        drifted = [f"target {line} {by}" for line in drifted]
        changes: list[str] = []
        moved: set[str] = set()  # source tables that changed, and target tables that drifted
        if record is not None and same_data:
            assert previous is not None
            by_table = self._source_changes(source, chosen, record, previous, live)
            changes = [line for lines in by_table.values() for line in lines] + drifted
            written = Fingerprint.from_dict(record.fingerprints["written"])
            moved = set(by_table) | changed_tables(written, in_target)
        left = self._left_behind(record, chosen) if record is not None and not same_data else []
        resume = resume_note(checkpoint) if resuming and checkpoint is not None else None
        decided = decide(address, record, document, changes, left, resume)
        if isinstance(decided, Action):
            return [decided]
        type_, reasons = decided
        refuse_unmasked(ctx.manifest, address, spec, chosen)
        dangling = dangling_references(source, spec, address, raw)
        if spec.on_dangling == "keep" and dangling and not ctx.is_missing(spec.target):
            with ctx.workspace.reach(spec.target).connect() as conn:
                refused = enforced_in_target(conn, chosen, dangling)
            if refused:
                raise PlanError(
                    f"{address}: on_dangling: keep cannot copy "
                    + "; ".join(refused)
                    + ": drop that key in the target, or use on_dangling: skip"
                )
        if spec.on_dangling == "keep":
            chosen = without_keys(chosen, dangling)
        reasons += [d.note(spec.on_dangling) for d in dangling]
        runs = table_runs(spec, chosen, record if same_data else None)
        unchanged = (
            unchanged_tables(runs, moved) if type_ is ActionType.RESYNC and not resuming else []
        )
        if unchanged:
            runs = [run for run in runs if run.selection.name not in unchanged]
            reasons.append(f"unchanged since the last apply, not copied: {', '.join(unchanged)}")
        target = None if ctx.is_missing(spec.target) else ctx.workspace.reach(spec.target)
        slower = text_copy_note(source, target) if target is not None else None
        reasons += [slower] if slower else []
        level = verification_note(document)
        reasons += [level] if level else []
        problems: list[str] = []
        for run in runs:
            try:
                check_table(run.selection, run.mode, run.cursor, spec.batch_size)
            except PlanError as error:
                problems.append(error.message)
        target_engine = engine_for(ctx.manifest.connections[spec.target].dialect)
        misfits = [
            line for run in runs for line in misfit_values(source, run.selection, target_engine)
        ]
        problems += [*misfits, MISFIT_REMEDY] if misfits else []
        rounded = [
            line for run in runs for line in rounded_decimals(source, run.selection, target_engine)
        ]
        problems += [*rounded, ROUNDED_REMEDY] if rounded else []
        checks = {
            run.selection.name: inspect_target(
                target, run.selection, schema_changes=spec.schema_changes, source=source
            )
            for run in runs
            if target is not None
        }
        problems += [problem for check in checks.values() for problem in check.problems]
        if target is None:  # a database still to be created: its tables will be new
            problems += [
                problem for run in runs for problem in unheld_columns(target_engine, run.selection)
            ]
        if problems:
            # Every problem of the migration at once, as validate reports the manifest's.
            raise PlanError("\n".join(problems))
        rows = {run.selection.name: self._rows_to_copy(run, live, source) for run in runs}
        existing = {
            run.selection.target
            for run in runs
            if (c := checks.get(run.selection.name)) and c.exists
        }
        left_out = keys_left_out(target_engine, [run.selection for run in runs], existing)
        reasons += [
            self._describe_table(
                spec,
                run,
                rows[run.selection.name],
                checks.get(run.selection.name),
                left_out.get(run.selection.name, []),
            )
            + _widened(source, spec, run.selection, rows[run.selection.name])
            for run in runs
        ]
        losses, held = self._losses(ctx, address, spec, runs, rows, target, in_target)
        payload = CopyTables(
            document,
            source=spec.source,
            target=spec.target,
            tables=tuple(_table_copy(run, rows[run.selection.name], held) for run in runs),
            # lets apply skip re-reading source data that did not move since
            source_fingerprint=live.to_dict(),
            dangling=tuple(dangling),
            unchanged=tuple(unchanged),
        )
        return [
            Action.on(
                address,
                KIND,
                type_,
                payload,
                reasons=reasons + list(losses.values()),
                destructive=bool(losses),
            )
        ]

    def _after_writers(
        self,
        ctx: PlanContext,
        address: str,
        spec: Migration,
        record: ResourceRecord | None,
        document: Spec,
        writers: list[Action],
    ) -> Action:
        """The copy of a source that `writers` write earlier in this plan: of the tables
        they leave there, as their plans tell them (`upstream`)."""
        options = spec.table_options()
        wanted = None if options is None else list(options)
        names, held = tables_after(ctx, spec.source, writers, wanted)
        by = written_by(writers)
        target = None if ctx.is_missing(spec.target) else ctx.workspace.reach(spec.target)
        in_target = set(sa.inspect(target).get_table_names()) if target is not None else set()
        copies = []
        for name in names:
            table = (options or {}).get(name)
            mode = (table.mode if table and table.mode else None) or spec.mode
            renamed = table.rename_to if table and table.rename_to else name
            copies.append(TableCopy(name, renamed, mode, held[name]))
        at_risk = [copy.target for copy in copies if copy.mode in DELETING_MODES]
        counts = row_counts(target, [t for t in at_risk if t in in_target]) if target else {}
        copies = [dataclasses.replace(copy, held=counts.get(copy.target, 0)) for copy in copies]
        occupied = [copy for copy in copies if copy.held]
        if occupied:
            modes = "/".join(sorted({copy.mode for copy in occupied}))
            full = ", ".join(copy.target for copy in occupied)
            refuse_if_protected(
                ctx, spec.target, address, f"{modes} into tables that hold data ({full})"
            )
        checkpoint = ctx.snapshot.checkpoints.get(address)
        resuming = checkpoint is not None and checkpoint.get("spec_digest") == data_digest(document)
        written = f"source {spec.source} is written earlier in this plan by {by}"
        decided = decide(
            address,
            record,
            document,
            [written],
            [],
            resume_note(checkpoint) if resuming and checkpoint is not None else None,
        )
        assert not isinstance(decided, Action)  # a source to be written is a change
        type_, reasons = decided
        follows_more = options is not None and spec.follow != "none"
        more = f" and those follow: {spec.follow} adds" if follows_more else ""
        reasons = [line for line in reasons if line != written]
        reasons.append(
            f"{written}: planned again from what it holds then, and applied if it copies "
            f"these tables{more}:"
        )
        reasons += [
            f"{copy.table} → {spec.target}.{copy.target}: "
            + (counted(copy.rows, "row") if copy.rows is not None else "rows counted then")
            + f" ({copy.mode}{'' if copy.target in in_target else ', new table'})"
            for copy in copies
        ]
        reasons += [
            deletion_note(
                copy.mode,
                f"{spec.target}.{copy.target}",
                copy.held,
                None if copy.rows is None else RowCount(copy.rows, estimated=False),
            )
            for copy in occupied
        ]
        payload = CopyTables(
            document,
            source=spec.source,
            target=spec.target,
            tables=tuple(copies),
            planned_after=tuple(writer.key for writer in writers),
            follows_more=follows_more,
        )
        return Action.on(address, KIND, type_, payload, reasons=reasons, destructive=bool(occupied))

    def _rows_to_copy(self, run: TableRun, live: Fingerprint, source: sa.Engine) -> RowCount | None:
        """How many rows the table would copy (exact or estimated), or None for an
        incremental copy."""
        if run.cursor and run.since is not None:
            return None
        return rows_to_copy(source, run.selection, live.tables[run.selection.name].rows)

    def _describe_table(
        self,
        spec: Migration,
        run: TableRun,
        rows: RowCount | None,
        check: TargetCheck | None,
        keys_left_out: Sequence[str],
    ) -> str:
        """One plan line for a table, with what the target holds of it (`check`; None when
        the target database does not exist yet) and the keys a new table will lack."""
        selection = run.selection
        if rows is None:
            amount = f"rows with {run.cursor} > {run.since!r}"
        elif rows.estimated:
            amount = f"~{counted(rows.rows, 'row')}, estimated"
        else:
            amount = counted(rows.rows, "row")
        notes: list[str] = [run.mode]
        if check is None or not check.exists:
            notes.append("new table")
            notes += check.notes if check is not None else ()
            notes += keys_left_out
        else:
            if check.missing_columns:
                added = check.missing_columns
                notes.append(f"adds column{'s' * (len(added) != 1)} " + ", ".join(added))
            if run.copies_differences:
                notes.append("only key ranges that differ")
        # Why the table is copied, except that the manifest lists it, which goes without saying.
        why = "".join(f"; {part}" for part in selection.reason.split("; ") if part != "listed")
        where = f"{selection.name} → {spec.target}.{selection.target}"
        return f"{where}: {amount} ({', '.join(notes)}{why})"

    def _losses(
        self,
        ctx: PlanContext,
        address: str,
        spec: Migration,
        runs: list[TableRun],
        rows: Mapping[str, RowCount | None],
        target: sa.Engine | None,
        in_target: Fingerprint,
    ) -> tuple[dict[str, str], dict[str, int]]:
        """What replace or mirror would delete from target tables that hold data, a line
        per target table (none: nothing destructive), and the rows each of them holds: from
        `in_target` (the target tables' fingerprints the drift check took) where it has
        them, else counted."""
        if target is None:
            return {}, {}
        at_risk = {run.selection.target: run for run in runs if run.mode in DELETING_MODES}
        known = {
            table: in_target.tables[table].rows for table in at_risk if table in in_target.tables
        }
        unknown = [table for table in at_risk if table not in known]
        found = {**known, **(row_counts(target, unknown) if unknown else {})}
        held = {table: found[table] for table in at_risk if table in found}  # in the runs' order
        occupied = [table for table, rows in held.items() if rows]
        if not occupied:
            return {}, held
        modes = "/".join(sorted({at_risk[table].mode for table in occupied}))
        what = f"{modes} into tables that hold data ({', '.join(occupied)})"
        refuse_if_protected(ctx, spec.target, address, what)
        notes = {
            table: deletion_note(
                at_risk[table].mode,
                f"{spec.target}.{table}",
                held[table],
                rows[at_risk[table].selection.name],
            )
            for table in occupied
        }
        return notes, held

    def _source_changes(
        self,
        source: sa.Engine,
        chosen: list[TableSelection],
        record: ResourceRecord,
        previous: Fingerprint,
        live: Fingerprint,
    ) -> dict[str, list[str]]:
        """What changed in the source since the last apply, by table, as far as the subset
        goes: a filtered table whose rows changed only outside its filter is not a change."""
        filtered = {s.name: s for s in chosen if s.where is not None}
        subsets = record.fingerprints.get("subset", {})
        lines: dict[str, list[str]] = {}
        for name in sorted(set(previous.tables) | set(live.tables)):
            old, new = previous.tables.get(name), live.tables.get(name)
            if old == new:
                continue
            if name in filtered and name in subsets and new is not None:
                old = TableFingerprint.from_dict(subsets[name])
                new = _subset_fingerprint(source, filtered[name], like=old)
                if old == new:
                    continue
                label = "source subset of"
            else:
                label = "source"
            before = Fingerprint({name: old} if old else {})
            after = Fingerprint({name: new} if new else {})
            lines[name] = [f"{label} {line}" for line in describe_changes(before, after)]
        return lines

    def _left_behind(self, record: ResourceRecord, chosen: list[TableSelection]) -> list[str]:
        """Target tables the last apply wrote that the changed spec no longer writes (a table
        renamed or left out): they stay as they are, which the plan says."""
        written = Fingerprint.from_dict(record.fingerprints["written"]).tables
        kept = {selection.target for selection in chosen}
        return [
            f"target table {table} is no longer written; it stays as it is"
            for table in sorted(set(written) - kept)
        ]

    def _drift(
        self, ctx: PlanContext, spec: Migration, record: ResourceRecord
    ) -> tuple[list[str], Fingerprint]:
        """Changes to the target tables the last apply wrote (the same spec writes the same
        ones), made since; and the fingerprints of those of them that exist now."""
        written = Fingerprint.from_dict(record.fingerprints["written"])
        live = Fingerprint(tables={})
        if not ctx.is_missing(spec.target):
            # A table dropped since is left out, and so shows as removed.
            existing = sa.inspect(ctx.workspace.reach(spec.target)).get_table_names()
            present = sorted(set(written.tables) & set(existing))
            if present:
                live = ctx.fingerprint(spec.target, present, previous=written)
        return describe_changes(written, live), live

    # -- apply ----------------------------------------------------------------------------

    def _copy(self, ctx: ApplyContext, action: Action) -> Outcome:
        planned = action.payload
        assert isinstance(planned, CopyTables)
        if planned.planned_after:
            return self._copy_written_source(ctx, action, planned)
        spec: Migration = ctx.manifest.migrations[action.address.split(".", 1)[1]]
        document = planned.spec
        source = ctx.workspace.reach(planned.source)
        target = ctx.workspace.reach(planned.target)
        record = ctx.record(action.address)
        raw = _source_tables(source, spec, ctx.workspace)
        chosen = _with_policy(raw, spec, source.dialect)
        same_data = record is not None and data_digest(record.spec) == data_digest(document)
        previous = Fingerprint.from_dict(planned.source_fingerprint)
        # The source as the copy starts from, reusing what the plan read where a table's token
        # proves it unchanged since.
        read = fingerprint_database(source, [s.name for s in chosen], previous=previous)
        # Checked again before anything is written, unless the source provably did not change
        # since the plan counted them: they are the plan's.
        still = plan_still_holds(previous, read)
        dangling = (
            list(planned.dangling)
            if still
            else dangling_references(source, spec, action.address, raw)
        )
        if spec.on_dangling == "keep":
            chosen = without_keys(chosen, dangling)
        runs = table_runs(spec, chosen, record if same_data else None)
        runs = [run for run in runs if run.selection.name not in planned.unchanged]
        refuse_moved(copies_moved(planned, runs))
        if not still:
            into = engine_for(target.dialect)
            refuse_moved(m for run in runs for m in misfit_values(source, run.selection, into))
        at_risk = [copy.target for copy in planned.tables if copy.mode in DELETING_MODES]
        refuse_moved(grown_since(planned, row_counts(target, at_risk)))
        refuse_moved(unchanged_moved(planned.unchanged, previous, read))
        checkpoint = ctx.checkpoint(action.address)
        resume = checkpoint if checkpoint.get("spec_digest") == data_digest(document) else None
        # Tables dsdb created stay its own (to finish with indexes and keys) across applies,
        # and across a checkpoint set aside because the spec changed.
        ours = {
            *(record.fingerprints.get("created", []) if record else []),
            *checkpoint.get("created", []),
        }
        before = set(sa.inspect(target).get_table_names())

        committed = [_rows_in(resume)] * 2  # at the start, and at the last checkpoint

        def save(data: dict[str, Any]) -> None:
            ctx.store.save_checkpoint(
                action.address, {**data, "spec_digest": data_digest(document)}
            )
            committed[1] = _rows_in(data)

        try:
            outcomes = run_migration(
                source,
                target,
                runs,
                batch_size=spec.batch_size,
                schema_changes=spec.schema_changes,
                parallelism=ctx.parallelism,
                resume=resume,
                on_checkpoint=save,
                progress=ctx.table_progress(action.address, planned.rows()),
                source_fingerprint=read,
                cancel=ctx.cancel,
                created=ours,
                verify=verify_level(document),
            )
        except BaseException as error:
            note_rows_committed(error, max(0, committed[1] - committed[0]))
            raise
        # The target tables left as they were keep their record; the others are read.
        left = {s.target for s in chosen if s.name in planned.unchanged}
        kept = _recorded(record, "written", left)
        level = verify_level(document)
        to_read = [s.target for s in chosen if s.target not in kept]
        written = (
            # Only counted, with each table's token, as its content was not read: the next
            # plan reads a table again when its token moved.
            count_tables(target, to_read)
            if level == COUNTS
            else fingerprint_database(target, to_read, previous=_verified_target(outcomes))
        )
        written = Fingerprint({**written.tables, **kept}, written.token)
        # Verification digested each subset already; only tables done by an older dsdb lack
        # it. None at counts: then any change to a filtered table is a change of its subset.
        verified = {o.table: o.subset for o in outcomes}
        subset = {
            s.name: (verified.get(s.name) or _subset_fingerprint(source, s)).to_dict()
            for s in chosen
            if s.where is not None and level == CONTENT
        }
        marks = record.fingerprints.get("high_water", {}) if record else {}
        high_water = {
            **{name: marks[name] for name in planned.unchanged if name in marks},
            **{o.table: o.to_dict()["high_water"] for o in outcomes if o.high_water is not None},
        }
        fingerprints = {
            "read": read.to_dict(),
            "subset": subset,
            "written": written.to_dict(),
            "high_water": high_water,
            "created": sorted(ours | ({s.target for s in chosen} - before)),
            "verified": level,
        }
        return Outcome(
            make_record(action.address, KIND, document, fingerprints=fingerprints),
            rows=sum(o.now.rows for o in outcomes),
            message=copy_summary(
                [o.now for o in outcomes], resumed=resume is not None, verified=level
            ),
            result=outcomes,
        )

    def _copy_written_source(
        self, ctx: ApplyContext, action: Action, planned: CopyTables
    ) -> Outcome:
        """The copy of a source written earlier in this apply: planned again now, from what
        the source holds, and applied when it copies what the plan showed."""
        spec: Migration = ctx.manifest.migrations[action.address.split(".", 1)[1]]
        record = ctx.record(action.address)
        now_ctx = PlanContext(
            manifest=ctx.manifest,
            workspace=ctx.workspace,
            snapshot=ctx.store.read(),
            chosen={action.address},
        )
        written = f"{planned.source} as {', '.join(planned.planned_after)} left it"
        try:
            now = self.plan(now_ctx, action.address, spec, record)[0]
        except PlanError as error:
            raise PlanError(f"cannot copy from {written}:\n{error.message}") from None
        if isinstance(now.payload, Unchanged):
            return Outcome(record, message=f"nothing to copy: {written} matches the target")
        if not isinstance(now.payload, CopyTables):
            return self.execute(ctx, now)
        refuse_moved(copies_beyond(planned, now.payload))
        target = ctx.workspace.reach(planned.target)
        at_risk = [copy.target for copy in now.payload.tables if copy.mode in DELETING_MODES]
        refuse_moved(grown_since(planned, row_counts(target, at_risk)))
        return self._copy(ctx, now)

    handlers: ClassVar[dict[type[Payload], Handler]] = {CopyTables: _copy}


def _widened(
    source: sa.Engine, spec: Migration, selection: TableSelection, rows: RowCount | None
) -> str:
    """A note when `follow` adds rows to a table the user filtered: the filter alone would
    select fewer rows than are copied."""
    options = (spec.table_options() or {}).get(selection.name)
    if rows is None or rows.estimated or options is None or selection.reason == "listed":
        return ""
    own = compile_where(selection.source, options.where, options.sql_where)
    if own is None:
        return ""
    with source.connect() as conn:
        filtered = count_rows(conn, dataclasses.replace(selection, where=own))
    if filtered >= rows.rows:
        return ""
    added = rows.rows - filtered
    return f"; its filter selects {counted(filtered, 'row')}, follow: {spec.follow} adds {added:,}"


def _table_copy(run: TableRun, rows: RowCount | None, held: Mapping[str, int]) -> TableCopy:
    selection = run.selection
    return TableCopy(
        table=selection.name,
        target=selection.target,
        mode=run.mode,
        rows=rows.rows if rows is not None else None,
        estimated=bool(rows and rows.estimated),
        held=held.get(selection.target, 0),
    )


def plan_still_holds(planned: Fingerprint, read: Fingerprint) -> bool:
    """Whether the source the apply `read` is the one the plan read (`planned`), so that
    what the plan found in it (dangling references) still holds (pure): by its change token
    (taken before each read) where it has one, else by the content of every table, which a
    plan of row counts alone cannot vouch for."""
    if read.token is not None and read.token == planned.token:
        return True
    return (
        bool(read.tables)
        and not read.counted()
        and all(planned.tables.get(name) == table for name, table in read.tables.items())
    )


def grown_since(planned: CopyTables, held: Mapping[str, int]) -> list[str]:
    """Target tables that replace or mirror would delete from and that hold more rows now
    (`held`) than the plan showed (pure): the reviewer never saw those rows go."""
    return [
        f"{planned.target}.{copy.target} holds {counted(held[copy.target], 'row')}, "
        f"the plan showed {copy.held:,} ({copy.mode} deletes from them)"
        for copy in planned.tables
        if copy.mode in DELETING_MODES and held.get(copy.target, 0) > copy.held
    ]


def copies_moved(planned: CopyTables, runs: list[TableRun]) -> list[str]:
    """How the tables a migration would copy now differ from those its plan showed (pure):
    the subset's closure follows the source's foreign keys, which can change."""
    shown = {(c.table, c.target, c.mode) for c in planned.tables}
    now = {(r.selection.name, r.selection.target, r.mode) for r in runs}
    return [
        f"{table} → {planned.target}.{target} ({mode}) would be copied; the plan did not show it"
        for table, target, mode in sorted(now - shown)
    ] + [
        f"{table} → {planned.target}.{target} ({mode}) is no longer selected"
        for table, target, mode in sorted(shown - now)
    ]


def copy_summary(
    written: Sequence[Written], *, resumed: bool, verified: VerifyLevel = CONTENT
) -> str:
    """What an apply wrote, counting only this apply: not what the interrupted apply it
    `resumed` committed, nor the tables it wrote nothing to; what it `verified` (content
    or row counts); and the time verifying took beyond the copy."""
    copied = sum(w.rows for w in written)
    tables = sum(1 for w in written if w.rows or w.deleted)
    deleted = sum(w.deleted for w in written)
    ranges = any(w.differences_only for w in written)
    verifying = sum(w.verifying for w in written)
    return (
        f"copied {counted(copied, 'row')}"
        + (" (only the key ranges that differed)" if ranges else "")
        + f" into {counted(tables, 'table')}"
        + (f", deleted {deleted:,}" if deleted else "")
        + (", resuming an interrupted apply" if resumed else "")
        + (", verified content" if verified == CONTENT else ", verified: row counts only")
        + (f"; verifying took {verifying:.1f} s" if verifying else "")
    )
