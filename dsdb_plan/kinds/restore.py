"""restore.<name>: a connection holds the data of a backup.

The backup is a backup resource's latest (or a chosen id) or a folder on disk. Plan: no
record -> create (refused when the target already holds those tables with data, unless
`replace_existing`); a newer backup or a changed spec -> resync/update; the target's data
changed since the restore -> resync, which overwrites it and so is destructive.

A backup whose rows point at no row of it through a declared foreign key is refused by the
plan, or its rows skipped or its key left out (`on_dangling`, `archive/references.py`),
counted from the backup's files when the plan knows the backup; a backup taken in the same
apply is counted by the apply, before it writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa

from dsdb_plan.archive import check_backup, read_backup_info, restore_backup
from dsdb_plan.archive.references import count_dangling, refusal
from dsdb_plan.archive.restore import OnDangling
from dsdb_plan.databases import row_counts
from dsdb_plan.dbschema import TableSchema
from dsdb_plan.engines import Engine, engine_for
from dsdb_plan.errors import BackupError, PlanError
from dsdb_plan.fingerprint import Fingerprint, describe_changes, fingerprint_database
from dsdb_plan.kinds.base import (
    ApplyContext,
    ForgettingKind,
    Handler,
    Outcome,
    PlanContext,
    make_record,
    protected_refusal,
    refuse_moved,
    spec_document,
    without_defaults,
)
from dsdb_plan.models import Restore
from dsdb_plan.payloads import Dangling, Payload, RestoreBackup, Spec, Unchanged
from dsdb_plan.plan import Action, ActionType, counted
from dsdb_plan.specdiff import spec_changes
from dsdb_plan.state import ResourceRecord
from dsdb_plan.typeless import REMEDY, for_engine

KIND = "restore"


def _latest_artifact(record: ResourceRecord | None, backup_id: str | None) -> dict[str, Any] | None:
    artifacts = record.artifacts if record else []
    if backup_id is None:
        return artifacts[0] if artifacts else None
    return next((a for a in artifacts if a["id"] == backup_id), None)


def _backup_record(
    resources: Mapping[str, ResourceRecord], backup_id: str
) -> dict[str, Any] | None:
    """What the state recorded of backup `backup_id` when it was taken (by a backup or a
    teardown's final backup), which its `backup.json` must still say; None if nothing did."""
    return next(
        (
            artifact
            for record in resources.values()
            for artifact in record.artifacts
            if "files" in artifact and artifact["id"] == backup_id
        ),
        None,
    )


def _dropped(record: ResourceRecord | None, existing: set[str]) -> list[str]:
    """The tables the restore wrote that are gone from the target (`existing`) since."""
    if record is None:
        return []
    written = Fingerprint.from_dict(record.fingerprints["written"]).tables
    gone = sorted(set(written) - existing)
    return [f"target table {table} removed outside dsdb" for table in gone]


@dataclass(frozen=True)
class RestoreObservation:
    """What a restore's plan read: the backup it would restore (`source`: id, path, label,
    tables), the target tables it writes, those holding data it did not write (`foreign`,
    with what is in them), those it wrote that are gone (`dropped`), and how many tables an
    interrupted restore finished (`resumed`, None when none was interrupted), and the
    backup's rows whose reference points at no row of it (`dangling`, counted only for a
    restore that would write; None when not counted: the apply counts them)."""

    source: dict[str, Any]
    writes: tuple[str, ...]
    foreign: dict[str, str]
    dropped: tuple[str, ...]
    resumed: int | None = None
    dangling: tuple[Dangling, ...] | None = None


def decide(
    address: str,
    spec: Restore,
    document: Spec,
    record: ResourceRecord | None,
    seen: RestoreObservation,
    *,
    protected: bool,
) -> Action:
    """The restore's action, from its spec, its record and what was observed (pure)."""
    source, foreign = seen.source, seen.foreign
    reasons: list[str] = []
    if record is None:
        type_ = ActionType.CREATE
        reasons.append(f"restore {source['label']} into {spec.to}")
        if seen.resumed is not None:
            done = counted(seen.resumed, "table")
            reasons.append(f"resuming an interrupted restore: {done} already done")
        if foreign and not spec.replace_existing:
            raise PlanError(
                f"{address}: {spec.to} already holds tables with data "
                f"({', '.join(sorted(foreign))}); set `replace_existing: true` to replace them"
            )
    elif record.spec != document:
        type_ = ActionType.UPDATE
        reasons += spec_changes(record.spec, document)
    elif source["id"] != record.fingerprints.get("backup_id"):
        type_ = ActionType.RESYNC
        restored = record.fingerprints.get("backup_id")
        reasons.append(f"{source['label']} replaces the restored backup {restored}")
    elif foreign or seen.dropped:
        type_ = ActionType.RESYNC
    else:
        why = f"{spec.to} holds backup {source['id']}"
        return Action.on(address, KIND, ActionType.NOOP, Unchanged(document), reasons=[why])
    reasons += [*foreign.values(), *seen.dropped]
    dangling = seen.dangling or ()
    if dangling and spec.on_dangling == "refuse":
        raise PlanError(refusal(dangling, address))
    reasons += [d.note(spec.on_dangling) for d in dangling]
    if foreign and protected:
        raise protected_refusal(address, spec.to, "restoring over its data")
    payload = RestoreBackup(
        document,
        connection=spec.to,
        backup_id=source["id"],
        path=source["path"],
        backup_address=None if spec.path is not None else f"backup.{spec.backup}",
        tables=tuple(spec.tables) if spec.tables else None,
        overwrites=tuple(sorted(foreign)),
        writes=seen.writes,
        dangling=seen.dangling,
    )
    return Action.on(address, KIND, type_, payload, reasons=reasons, destructive=bool(foreign))


_REMEDY = f"{REMEDY}, then take a new backup"


def _typed_columns(address: str, tables: Sequence[TableSchema], into: Engine) -> list[str]:
    """How `into` types the typeless columns of `tables`, those the restore writes, a line
    for each; PlanError naming every column no type holds."""
    lines, refused = [], []
    for table in tables:
        try:
            typed = for_engine(table, into, remedy=_REMEDY)[1]
            lines += [f"table {table.name}: {why}" for why in typed]
        except PlanError as error:
            refused.append(error.message)
    if refused:
        raise PlanError(f"{address}: " + "\n".join(refused))
    return lines


class RestoreKind(ForgettingKind):
    left_behind = "restored data stays"

    def plan(
        self, ctx: PlanContext, address: str, spec: Restore, record: ResourceRecord | None
    ) -> list[Action]:
        document = without_defaults(
            spec_document(ctx.manifest, spec, [spec.to]), {"on_dangling": "refuse"}
        )
        source = self._planned_source(ctx, address, spec)
        checkpoint = ctx.snapshot.checkpoints.get(address)
        existing = (
            set()
            if ctx.is_missing(spec.to)
            else set(sa.inspect(ctx.workspace.reach(spec.to)).get_table_names())
        )
        writes = sorted(spec.tables or source["tables"] or self._tables_backed_up(ctx, spec))
        seen = RestoreObservation(
            source=source,
            writes=tuple(writes),
            foreign=self._foreign_data(ctx, spec, writes, record, checkpoint, existing),
            dropped=tuple(_dropped(record, existing)),
            resumed=None if checkpoint is None else len(checkpoint.get("completed", [])),
        )
        protected = ctx.manifest.connections[spec.to].protect
        action = decide(address, spec, document, record, seen, protected=protected)
        if action.is_change and source["path"] is not None:
            # The backup is checked when the plan would read it (one taken in this apply is
            # checked as it is read), and its dangling references counted.
            recorded = _backup_record(ctx.snapshot.resources, source["id"])
            info = check_backup(Path(source["path"]), recorded=recorded)
            restored = [t for t in info.tables if spec.tables is None or t.name in spec.tables]
            try:
                dangling = tuple(count_dangling(info, restored))
            except BackupError:
                # A damaged data file: the apply's check of every file names what is wrong.
                dangling = None
            seen = dataclasses.replace(seen, dangling=dangling)
            action = decide(address, spec, document, record, seen, protected=protected)
            into = engine_for(ctx.workspace.connection(spec.to).dialect)
            written = [table for table in info.tables if table.name in writes]
            typed = _typed_columns(address, written, into)
            action = dataclasses.replace(action, reasons=(*action.reasons, *typed))
        return [action]

    def _foreign_data(
        self,
        ctx: PlanContext,
        spec: Restore,
        writes: list[str],
        record: ResourceRecord | None,
        checkpoint: dict[str, Any] | None,
        existing: set[str],
    ) -> dict[str, str]:
        """Of the tables the restore `writes`, those the target has (`existing`) holding
        data it did not write, with what is in them. Their fingerprints go into the plan,
        so a saved plan notices edits."""
        present = sorted(set(writes) & existing)
        if not present:
            return {}
        written = Fingerprint.from_dict(record.fingerprints["written"]) if record else None
        # What the restore wrote stands for the tables a change token shows unchanged since.
        live = ctx.fingerprint(spec.to, present, previous=written)
        # Tables an interrupted apply finished or was loading hold its own rows.
        ours = (
            {*checkpoint.get("completed", []), *checkpoint.get("loading", [])}
            if checkpoint
            else set()
        )
        foreign = {}
        for table in present:
            now = live.tables[table]
            if table in ours or now.rows == 0:
                continue
            if written is None or table not in written.tables:
                foreign[table] = f"replaces table {table} in {spec.to} ({counted(now.rows, 'row')})"
            elif written.tables[table] != now:
                change = describe_changes(
                    Fingerprint({table: written.tables[table]}), Fingerprint({table: now})
                )
                foreign[table] = f"target changed outside dsdb: {change[0]}"
        return foreign

    def _tables_backed_up(self, ctx: PlanContext, spec: Restore) -> list[str]:
        """The tables a backup taken in this apply will hold (its connection's, or listed)."""
        assert spec.backup is not None
        backup = ctx.manifest.backups[spec.backup]
        if ctx.is_missing(backup.connection):
            return list(backup.tables or [])
        return sorted(ctx.fingerprint(backup.connection, backup.tables).tables)

    def _planned_source(self, ctx: PlanContext, address: str, spec: Restore) -> dict[str, Any]:
        """Which backup this restore would read, as far as can be known before applying."""
        if spec.path is not None:
            info = read_backup_info(ctx.workspace.resolve(spec.path))
            return {
                "id": info.id,
                "path": str(info.path),
                "label": f"backup {info.id}",
                "tables": [f.table for f in info.files],
            }
        backup_address = f"backup.{spec.backup}"
        if ctx.takes_new_backup(backup_address) and spec.backup_id is None:
            return {
                "id": None,
                "path": None,
                "tables": None,
                "label": f"the backup that {backup_address} takes in this apply",
            }
        artifact = _latest_artifact(ctx.snapshot.resources.get(backup_address), spec.backup_id)
        if artifact is None:
            wanted = f"backup {spec.backup_id}" if spec.backup_id else "backup yet"
            raise PlanError(f"{address}: {backup_address} has no {wanted} to restore")
        return {
            "id": artifact["id"],
            "path": artifact["path"],
            "label": f"backup {artifact['id']} of {backup_address}",
            "tables": [f["table"] for f in artifact.get("files", [])],
        }

    # -- apply ----------------------------------------------------------------------------

    def _restore(self, ctx: ApplyContext, action: Action) -> Outcome:
        planned = action.payload
        assert isinstance(planned, RestoreBackup)
        backup_id, path = _resolve_source(ctx, planned)
        checkpoint = ctx.checkpoint(action.address)
        policy = _policy(planned.spec)
        # Tables loaded under another policy hold other rows, or other keys: loaded again.
        same = checkpoint.get("backup_id") == backup_id and (
            checkpoint.get("on_dangling", "refuse") == policy
        )
        completed = set(checkpoint.get("completed", [])) if same else set()
        engine = ctx.workspace.reach(planned.connection)
        info = read_backup_info(path)
        writes = [
            f.table for f in info.files if planned.tables is None or f.table in planned.tables
        ]
        record = ctx.record(action.address)
        # A table this restore was loading when it stopped holds its own rows.
        loading = set(checkpoint.get("loading", [])) if same else set()
        ours = (
            completed
            | loading
            | (
                set(Fingerprint.from_dict(record.fingerprints["written"]).tables)
                if record
                else set()
            )
        )
        refuse_moved(_unshown_data(engine, planned, writes, ours))
        done = sorted(completed)
        fingerprints = _RestoredFingerprints(engine)

        def save(loading: list[str]) -> None:
            ctx.store.save_checkpoint(
                action.address,
                {
                    "backup_id": backup_id,
                    "on_dangling": policy,
                    "completed": sorted(done),
                    "loading": loading,
                },
            )

        def table_done(table: str, rows: int) -> None:
            done.append(table)
            save([])
            fingerprints.committed(table)

        with fingerprints:
            result = restore_backup(
                path,
                engine,
                recorded=_backup_record(ctx.store.read().resources, backup_id),
                tables=list(planned.tables) if planned.tables is not None else None,
                # What holds data was checked above: the plan showed it, or dsdb wrote it.
                replace_existing=True,
                completed=completed,
                on_table_done=table_done,
                on_table_started=lambda table: save([table]),
                progress=ctx.table_progress(action.address, {f.table: f.rows for f in info.files}),
                cancel=ctx.cancel,
                on_dangling=policy,
                # As the plan counted them in the backup it named (checked unchanged since).
                dangling=planned.dangling,
            )
            written = fingerprints.result([*result.tables, *result.skipped])
        record = make_record(
            action.address,
            KIND,
            planned.spec,
            fingerprints={"backup_id": backup_id, "written": written.to_dict()},
        )
        return Outcome(
            record,
            rows=result.rows,
            message=f"restored backup {backup_id} into {planned.connection}",
            result=result,
        )

    handlers: ClassVar[dict[type[Payload], Handler]] = {RestoreBackup: _restore}


def _policy(document: Spec) -> OnDangling:
    """The restore's `on_dangling`, from its recorded spec (absent: the default)."""
    policy: OnDangling = document.get("on_dangling", "refuse")
    return policy


def _resolve_source(ctx: ApplyContext, planned: RestoreBackup) -> tuple[str, Path]:
    """The backup the plan named; a backup taken in this apply is known only now."""
    if planned.backup_id is None:
        assert planned.backup_address is not None
        artifact = _latest_artifact(ctx.record(planned.backup_address), None)
        if artifact is None:
            raise BackupError(f"no backup of {planned.backup_address} to restore")
        return artifact["id"], Path(artifact["path"])
    assert planned.path is not None
    path = Path(planned.path)
    if planned.backup_address is None:
        found = read_backup_info(path).id
        refuse_moved(
            [f"{path} holds backup {found} now, the plan showed {planned.backup_id}"]
            if found != planned.backup_id
            else [],
        )
    return planned.backup_id, path


def _unshown_data(
    engine: sa.Engine, planned: RestoreBackup, writes: list[str], ours: set[str]
) -> list[str]:
    """Target tables the restore would overwrite that hold data the plan did not show it
    replaces (dsdb's own earlier writes aside)."""
    suspect = [t for t in writes if t not in ours and t not in planned.overwrites]
    return [
        f"table {table} in {planned.connection} holds {counted(held, 'row')} "
        "that the plan did not show it replaces"
        for table, held in row_counts(engine, suspect).items()
        if held
    ]


class _RestoredFingerprints:
    """The fingerprint of the restored tables, each taken once the table is committed.

    On a server, a worker thread takes it while the next table loads (the database does the
    hashing, so the two overlap). On a single-writer engine (SQLite) they are taken at the
    end: a reader would hold up the writer there.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._worker = (
            None
            if engine_for(engine.dialect).capabilities.single_writer
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsdb-fingerprint")
        )
        self._taken: dict[str, Future[Fingerprint]] = {}

    def committed(self, table: str) -> None:
        if self._worker is not None:
            self._taken[table] = self._worker.submit(fingerprint_database, self._engine, [table])

    def result(self, tables: list[str]) -> Fingerprint:
        """The fingerprint of `tables`: those committed by this run as they were then, the
        others (done by an earlier, interrupted run) now."""
        rest = fingerprint_database(self._engine, [t for t in tables if t not in self._taken])
        found = dict(rest.tables)
        for future in self._taken.values():
            found.update(future.result().tables)
        return Fingerprint(found, rest.token)

    def __enter__(self) -> _RestoredFingerprints:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._worker is not None:
            self._worker.shutdown(cancel_futures=True)
