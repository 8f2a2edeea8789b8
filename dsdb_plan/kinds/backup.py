"""backup.<name>: a verified backup reflecting the connection's current data; keep the newest N.

Plan: no record -> create; tables or connection changed -> update with a new backup; other
spec fields changed (keep) -> update of the record only; data changed since the last backup,
or the latest backup missing on disk or unlike its record (`archive.check_backup`) -> resync;
backups past `keep` -> a destructive prune.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

from dsdb_plan.archive import check_backup, new_backup_id, write_backup
from dsdb_plan.errors import BackupError, PlanError
from dsdb_plan.fingerprint import Fingerprint, FingerprintWhileReading, describe_changes
from dsdb_plan.kinds.base import (
    ApplyContext,
    Outcome,
    PlanContext,
    make_record,
    removed_action,
    spec_document,
)
from dsdb_plan.models import Backup
from dsdb_plan.plan import Action, ActionType, counted
from dsdb_plan.specdiff import spec_changes
from dsdb_plan.state import ResourceRecord

KIND = "backup"
PRUNE = "#prune"
_DATA_FIELDS = ("connection", "tables", "links")


def _data_part(document: dict[str, Any]) -> dict[str, Any]:
    return {name: document.get(name) for name in _DATA_FIELDS}


def _expected_rows(planned: Fingerprint | None) -> dict[str, int]:
    """Rows per table as planned, for progress; the backup may find a few more or less."""
    return {name: table.rows for name, table in planned.tables.items()} if planned else {}


def _rows(fingerprint: Fingerprint) -> int:
    return sum(table.rows for table in fingerprint.tables.values())


def _summary(connection: str, fingerprint: Fingerprint) -> str:
    tables = counted(len(fingerprint.tables), "table")
    return f"new backup of {connection}: {tables}, {counted(_rows(fingerprint), 'row')}"


class BackupKind:
    def plan(
        self, ctx: PlanContext, address: str, spec: Backup, record: ResourceRecord | None
    ) -> list[Action]:
        document = spec_document(ctx.manifest, spec, [spec.connection])
        if ctx.is_missing(spec.connection):
            link = ctx.workspace.connection(spec.connection).link
            raise PlanError(
                f"database {spec.connection} ({link}) does not exist: nothing to back up"
            )
        previous = Fingerprint.from_dict(record.fingerprints["read"]) if record else None
        live = ctx.fingerprint(spec.connection, spec.tables, previous=previous)
        details = {
            "spec": document,
            "new_backup": True,
            "rows": _rows(live),
            "fingerprint": live.to_dict(),  # lets apply skip re-reading data that did not move
        }
        if record is None:
            main = Action.on(
                address,
                KIND,
                ActionType.CREATE,
                reasons=(_summary(spec.connection, live),),
                details=details,
            )
        elif record.spec != document:
            data_changed = _data_part(record.spec) != _data_part(document)
            reasons = tuple(spec_changes(record.spec, document))
            if data_changed:
                reasons += (_summary(spec.connection, live),)
            main = Action.on(
                address,
                KIND,
                ActionType.UPDATE,
                reasons=reasons,
                details={**details, "new_backup": data_changed},
            )
        else:
            main = self._content_action(address, details, record, previous, live)
        return [main, *self._prune(ctx, spec, record, main)]

    def _content_action(
        self,
        address: str,
        details: dict[str, Any],
        record: ResourceRecord,
        previous: Fingerprint | None,
        live: Fingerprint,
    ) -> Action:
        latest = record.artifacts[0] if record.artifacts else None
        if latest is None or not Path(latest["path"]).is_dir():
            missing = (
                f"latest backup {latest['id']} is missing from {latest['path']}"
                if latest
                else "no backup recorded"
            )
            return Action.on(address, KIND, ActionType.RESYNC, reasons=(missing,), details=details)
        try:
            check_backup(Path(latest["path"]), recorded=latest)
        except BackupError as error:
            damaged = f"the latest backup is damaged: {error.message}"
            return Action.on(address, KIND, ActionType.RESYNC, reasons=(damaged,), details=details)
        changes = describe_changes(previous, live) if previous else ["no fingerprint recorded"]
        if changes:
            return Action.on(
                address, KIND, ActionType.RESYNC, reasons=tuple(changes), details=details
            )
        return Action.on(
            address,
            KIND,
            ActionType.NOOP,
            reasons=(f"latest backup {latest['id']} reflects the current data",),
            details={**details, "new_backup": False},
        )

    def _prune(
        self, ctx: PlanContext, spec: Backup, record: ResourceRecord | None, main: Action
    ) -> list[Action]:
        if record is None:
            return []
        adds_one = main.details.get("new_backup", False) and main.is_change
        keep_old = spec.keep - 1 if adds_one else spec.keep
        doomed = record.artifacts[keep_old:]
        if not doomed:
            return []
        ids = [artifact["id"] for artifact in doomed]
        return [
            Action(
                key=main.address + PRUNE,
                address=main.address,
                kind=KIND,
                type=ActionType.DESTROY,
                reasons=(
                    f"prune {counted(len(ids), 'old backup')} (keep: {spec.keep}): "
                    + ", ".join(ids),
                ),
                destructive=True,
                depends_on=(main.key,) if main.is_change else (),
                details={"prune": ids},
            )
        ]

    def plan_removed(self, ctx: PlanContext, record: ResourceRecord) -> list[Action]:
        ids = [artifact["id"] for artifact in record.artifacts]
        reason = (
            f"delete its {counted(len(ids), 'backup')}: {', '.join(ids)}"
            if ids
            else "no backups on disk"
        )
        return [removed_action(record, reason, destructive=bool(ids), details={"prune": ids})]

    # -- apply ----------------------------------------------------------------------------

    def apply_removed(self, ctx: ApplyContext, action: Action) -> Outcome:
        record = ctx.record(action.address)
        doomed = set(action.details["prune"])
        freed = _delete(record.artifacts if record else [], doomed)
        return Outcome(None, bytes=freed, message=f"deleted {counted(len(doomed), 'backup')}")

    def apply(self, ctx: ApplyContext, action: Action) -> Outcome:
        record = ctx.record(action.address)
        if "prune" in action.details:
            return self._apply_prune(action, record)
        spec: Backup = ctx.manifest.backups[action.address.split(".", 1)[1]]
        document = action.details["spec"]
        if not action.details.get("new_backup") and record is not None:
            return Outcome(
                make_record(
                    action.address,
                    KIND,
                    document,
                    fingerprints=record.fingerprints,
                    artifacts=record.artifacts,
                )
            )
        planned = action.details.get("fingerprint")
        return self.take(
            ctx,
            action.address,
            spec,
            document,
            record,
            planned=Fingerprint.from_dict(planned) if planned else None,
        )

    def take(
        self,
        ctx: ApplyContext,
        address: str,
        spec: Backup,
        document: dict[str, Any],
        record: ResourceRecord | None,
        *,
        planned: Fingerprint | None = None,
    ) -> Outcome:
        """Take one backup now and record it as the newest, with the fingerprint of the data
        it holds: `planned` when the data provably did not move since; else SQLite rows are
        hashed as the backup reads them, and other databases fingerprinted before it reads,
        so that a change made meanwhile shows as a change at the next plan."""
        engine = ctx.workspace.reach(spec.connection)
        reading = FingerprintWhileReading(engine, spec.tables, previous=planned)
        root = ctx.workspace.backups_dir(address.split(".", 1)[1])
        info = write_backup(
            engine,
            root,
            new_backup_id(dt.datetime.now(dt.UTC)),
            spec.tables,
            progress=ctx.table_progress(address, _expected_rows(planned)),
            on_rows=reading.add,
            cancel=ctx.cancel,
        )
        fingerprint = reading.result(info.table_names)
        artifact = {**info.to_dict(), "path": str(info.path), "fingerprint": fingerprint.to_dict()}
        artifacts = [artifact, *(record.artifacts if record else [])]
        return Outcome(
            make_record(
                address,
                KIND,
                document,
                fingerprints={"read": fingerprint.to_dict()},
                artifacts=artifacts,
            ),
            rows=info.total_rows,
            bytes=info.total_bytes,
            message=f"backup {info.id} written to {info.path}",
        )

    def _apply_prune(self, action: Action, record: ResourceRecord | None) -> Outcome:
        assert record is not None
        doomed = set(action.details["prune"])
        freed = _delete(record.artifacts, doomed)
        kept = [a for a in record.artifacts if a["id"] not in doomed]
        return Outcome(
            make_record(
                record.address, KIND, record.spec, fingerprints=record.fingerprints, artifacts=kept
            ),
            bytes=freed,
            message=f"pruned {counted(len(doomed), 'backup')}",
        )


def _delete(artifacts: list[dict[str, Any]], doomed: set[str]) -> int:
    """Delete the backup folders of `doomed` ids; return the bytes freed."""
    freed = 0
    for artifact in artifacts:
        if artifact["id"] in doomed and Path(artifact["path"]).is_dir():
            freed += artifact.get("total_bytes", 0)
            shutil.rmtree(artifact["path"])
    return freed
