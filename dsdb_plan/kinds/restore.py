"""restore.<name>: a connection holds the data of a backup.

The backup is a backup resource's latest (or a chosen id) or a folder on disk. Plan: no
record -> create (refused when the target already holds those tables with data, unless
`replace_existing`); a newer backup or a changed spec -> resync/update; the target's data
changed since the restore -> resync, which overwrites it and so is destructive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dsdb_plan.archive import read_backup_info, restore_backup, tables_with_data
from dsdb_plan.errors import BackupError, PlanError
from dsdb_plan.fingerprint import Fingerprint, describe_changes, fingerprint_database
from dsdb_plan.kinds.base import (
    ApplyContext,
    Outcome,
    PlanContext,
    make_record,
    removed_action,
    spec_document,
)
from dsdb_plan.models import Restore
from dsdb_plan.plan import Action, ActionType
from dsdb_plan.specdiff import spec_changes
from dsdb_plan.state import ResourceRecord

KIND = "restore"


def _latest_artifact(record: ResourceRecord | None, backup_id: str | None) -> dict[str, Any] | None:
    artifacts = record.artifacts if record else []
    if backup_id is None:
        return artifacts[0] if artifacts else None
    return next((a for a in artifacts if a["id"] == backup_id), None)


class RestoreKind:
    def plan(
        self, ctx: PlanContext, address: str, spec: Restore, record: ResourceRecord | None
    ) -> list[Action]:
        document = spec_document(ctx.manifest, spec, [spec.to])
        source = self._planned_source(ctx, address, spec)
        tables = spec.tables or source.get("tables")
        details: dict[str, Any] = {"spec": document, "source": source}
        if record is None:
            reasons = [f"restore {source['label']} into {spec.to}"]
            checkpoint = ctx.snapshot.checkpoints.get(address)
            if checkpoint is not None:
                # An unfinished restore: the tables it holds are its own, not data to guard.
                done = len(checkpoint.get("completed", []))
                reasons.append(f"resuming an interrupted restore: {done} table(s) already done")
                destructive = False
            else:
                destructive = self._occupied(ctx, address, spec, tables, reasons)
            return [
                Action.on(
                    address,
                    KIND,
                    ActionType.CREATE,
                    reasons=tuple(reasons),
                    destructive=destructive,
                    details=details,
                )
            ]
        if record.spec != document:
            reasons = spec_changes(record.spec, document)
            return [
                Action.on(
                    address,
                    KIND,
                    ActionType.UPDATE,
                    reasons=tuple(reasons),
                    destructive=True,
                    details=details,
                )
            ]
        restored_id = record.fingerprints.get("backup_id")
        if source["id"] != restored_id:
            reason = f"{source['label']} replaces the restored backup {restored_id}"
            return [
                Action.on(
                    address,
                    KIND,
                    ActionType.RESYNC,
                    reasons=(reason,),
                    destructive=False,
                    details=details,
                )
            ]
        written = Fingerprint.from_dict(record.fingerprints["written"])
        live = ctx.fingerprint(spec.to, sorted(written.tables) or None, previous=written)
        drift = describe_changes(written, live)
        if drift:
            self._refuse_if_protected(ctx, address, spec)
            drift = [f"target changed outside dsdb: {line}" for line in drift]
            return [
                Action.on(
                    address,
                    KIND,
                    ActionType.RESYNC,
                    reasons=drift,
                    destructive=True,
                    details=details,
                )
            ]
        return [
            Action.on(
                address,
                KIND,
                ActionType.NOOP,
                reasons=(f"{spec.to} holds backup {restored_id}",),
                details=details,
            )
        ]

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
            wanted = f"backup {spec.backup_id} of " if spec.backup_id else "any backup of "
            raise PlanError(f"{address}: there is no {wanted}{backup_address} to restore")
        return {
            "id": artifact["id"],
            "path": artifact["path"],
            "label": f"backup {artifact['id']} of {backup_address}",
            "tables": [f["table"] for f in artifact.get("files", [])],
        }

    def _occupied(
        self,
        ctx: PlanContext,
        address: str,
        spec: Restore,
        tables: list[str] | None,
        reasons: list[str],
    ) -> bool:
        """Whether the restore would replace tables that hold data; refuse without consent."""
        if tables is None or ctx.is_missing(spec.to):
            return False
        engine = ctx.workspace.reach(spec.to)
        occupied = tables_with_data(engine, tables)
        if not occupied:
            return False
        names = ", ".join(occupied)
        if not spec.replace_existing:
            raise PlanError(
                f"{address}: {spec.to} already holds tables with data ({names}); "
                "set `replace_existing: true` to replace them"
            )
        self._refuse_if_protected(ctx, address, spec)
        reasons.append(f"replaces tables holding data in {spec.to}: {names}")
        return True

    def _refuse_if_protected(self, ctx: PlanContext, address: str, spec: Restore) -> None:
        if ctx.manifest.connections[spec.to].protect:
            raise PlanError(
                f"{address}: connection '{spec.to}' is protected; restoring over its data "
                "is refused"
            )

    def plan_removed(self, ctx: PlanContext, record: ResourceRecord) -> list[Action]:
        return [removed_action(record, "the record is forgotten; restored data stays")]

    # -- apply ----------------------------------------------------------------------------

    def apply(self, ctx: ApplyContext, action: Action) -> Outcome:
        if action.details.get("removed"):
            return Outcome(None, message="forgotten")
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

        def table_done(table: str, rows: int) -> None:
            done.append(table)
            ctx.store.save_checkpoint(
                action.address, {"backup_id": backup_id, "completed": sorted(done)}
            )

        result = restore_backup(
            path,
            engine,
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
        )
        written = fingerprint_database(engine, list(result.tables))
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
