"""restore.<name>: a connection holds the data of a backup.

The backup is a backup resource's latest (or a chosen id) or a folder on disk. Plan: no
record -> create (refused when the target already holds those tables with data, unless
`replace_existing`); a newer backup or a changed spec -> resync/update; the target's data
changed since the restore -> resync, which overwrites it and so is destructive.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dsdb_plan.archive import check_backup, read_backup_info, restore_backup
from dsdb_plan.errors import BackupError, PlanError
from dsdb_plan.fingerprint import Fingerprint, describe_changes, fingerprint_database
from dsdb_plan.kinds.base import (
    ApplyContext,
    ForgettingKind,
    Outcome,
    PlanContext,
    make_record,
    refuse_if_protected,
    spec_document,
)
from dsdb_plan.models import Restore
from dsdb_plan.plan import Action, ActionType, counted
from dsdb_plan.specdiff import spec_changes
from dsdb_plan.state import ResourceRecord

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


class RestoreKind(ForgettingKind):
    left_behind = "restored data stays"

    def plan(
        self, ctx: PlanContext, address: str, spec: Restore, record: ResourceRecord | None
    ) -> list[Action]:
        document = spec_document(ctx.manifest, spec, [spec.to])
        source = self._planned_source(ctx, address, spec)
        details: dict[str, Any] = {"spec": document, "source": source}
        checkpoint = ctx.snapshot.checkpoints.get(address)
        existing = (
            set()
            if ctx.is_missing(spec.to)
            else set(sa.inspect(ctx.workspace.reach(spec.to)).get_table_names())
        )
        foreign = self._foreign_data(ctx, spec, source, record, checkpoint, existing)
        dropped = _dropped(record, existing)
        reasons: list[str] = []
        if record is None:
            type_ = ActionType.CREATE
            reasons.append(f"restore {source['label']} into {spec.to}")
            if checkpoint is not None:
                done = len(checkpoint.get("completed", []))
                reasons.append(
                    f"resuming an interrupted restore: {counted(done, 'table')} already done"
                )
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
        elif foreign or dropped:
            type_ = ActionType.RESYNC
        else:
            return [
                Action.on(
                    address,
                    KIND,
                    ActionType.NOOP,
                    reasons=[f"{spec.to} holds backup {source['id']}"],
                    details=details,
                )
            ]
        reasons += [*foreign.values(), *dropped]
        if source["path"] is not None:  # a backup taken in this apply is checked as it is read
            check_backup(
                Path(source["path"]), recorded=_backup_record(ctx.snapshot.resources, source["id"])
            )
        if foreign:
            refuse_if_protected(ctx, spec.to, address, "restoring over its data")
        return [
            Action.on(
                address, KIND, type_, reasons=reasons, destructive=bool(foreign), details=details
            )
        ]

    def _foreign_data(
        self,
        ctx: PlanContext,
        spec: Restore,
        source: dict[str, Any],
        record: ResourceRecord | None,
        checkpoint: dict[str, Any] | None,
        existing: set[str],
    ) -> dict[str, str]:
        """Target tables the restore would overwrite that hold data it did not write, with
        what is in them (`existing`: the target's tables). Their fingerprints go into the
        plan, so a saved plan notices edits."""
        if not existing:
            return {}
        tables = spec.tables or source["tables"] or self._tables_backed_up(ctx, spec)
        present = sorted(set(tables) & existing)
        if not present:
            return {}
        written = Fingerprint.from_dict(record.fingerprints["written"]) if record else None
        # What the restore wrote stands for the tables a change token shows unchanged since.
        live = ctx.fingerprint(spec.to, present, previous=written)
        ours = set(checkpoint.get("completed", [])) if checkpoint else set()
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
            info = read_backup_info(Path(spec.path))
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

    def apply(self, ctx: ApplyContext, action: Action) -> Outcome:
        spec: Restore = ctx.manifest.restores[action.address.split(".", 1)[1]]
        backup_id, path = self._resolve_source(ctx, spec)
        checkpoint = ctx.checkpoint(action.address)
        completed = (
            set(checkpoint.get("completed", []))
            if checkpoint.get("backup_id") == backup_id
            else set()
        )
        engine = ctx.workspace.reach(spec.to)
        done = sorted(completed)
        fingerprints = _RestoredFingerprints(engine)

        def table_done(table: str, rows: int) -> None:
            done.append(table)
            ctx.store.save_checkpoint(
                action.address, {"backup_id": backup_id, "completed": sorted(done)}
            )
            fingerprints.committed(table)

        with fingerprints:
            result = restore_backup(
                path,
                engine,
                recorded=_backup_record(ctx.store.read().resources, backup_id),
                tables=spec.tables,
                replace_existing=spec.replace_existing
                or action.destructive
                or bool(checkpoint)
                or ctx.record(action.address) is not None,
                completed=completed,
                on_table_done=table_done,
                progress=ctx.table_progress(
                    action.address, {f.table: f.rows for f in read_backup_info(path).files}
                ),
                cancel=ctx.cancel,
            )
            written = fingerprints.result([*result.tables, *result.skipped])
        record = make_record(
            action.address,
            KIND,
            action.details["spec"],
            fingerprints={"backup_id": backup_id, "written": written.to_dict()},
        )
        return Outcome(
            record, rows=result.rows, message=f"restored backup {backup_id} into {spec.to}"
        )

    def _resolve_source(self, ctx: ApplyContext, spec: Restore) -> tuple[str, Path]:
        if spec.path is not None:
            info = read_backup_info(Path(spec.path))
            return info.id, info.path
        artifact = _latest_artifact(ctx.record(f"backup.{spec.backup}"), spec.backup_id)
        if artifact is None:
            raise BackupError(f"no backup of backup.{spec.backup} to restore")
        return artifact["id"], Path(artifact["path"])


class _RestoredFingerprints:
    """The fingerprint of the restored tables, each taken once the table is committed.

    On a server, a worker thread takes it while the next table loads (the database does the
    hashing, so the two overlap). SQLite ones are taken at the end: a reader would hold up
    the writer there.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._worker = (
            None
            if engine.dialect.name == "sqlite"
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
