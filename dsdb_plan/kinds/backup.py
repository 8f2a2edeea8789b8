"""backup.<name>: a verified backup reflecting the connection's current data; keep the newest N.

Plan: no record -> create; tables or connection changed -> update with a new backup; other
spec fields changed (keep) -> update of the record only; data changed since the last backup,
or the latest backup missing on disk or unlike its record (`archive.check_backup`) -> resync;
backups past `keep` -> a destructive prune.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any, ClassVar

from dsdb_plan.archive import check_backup, new_backup_id, write_backup
from dsdb_plan.databases import present_tables
from dsdb_plan.errors import BackupError, PlanError
from dsdb_plan.fingerprint import Fingerprint, FingerprintWhileReading, describe_changes
from dsdb_plan.kinds.base import (
    ApplyContext,
    Handler,
    Outcome,
    PayloadKind,
    PlanContext,
    make_record,
    refuse_moved,
    removed_action,
    spec_document,
)
from dsdb_plan.kinds.upstream import tables_after, written_by
from dsdb_plan.models import Backup
from dsdb_plan.payloads import Payload, PruneBackups, RecordSettings, Spec, TakeBackup, Unchanged
from dsdb_plan.plan import Action, ActionType, counted
from dsdb_plan.specdiff import spec_changes
from dsdb_plan.state import ResourceRecord

KIND = "backup"
PRUNE = "#prune"
_DATA_FIELDS = ("connection", "tables", "links")


def _data_part(document: dict[str, Any]) -> dict[str, Any]:
    return {name: document.get(name) for name in _DATA_FIELDS}


def _expected_rows(planned: Fingerprint) -> dict[str, int]:
    """Rows per table as planned, for progress; the backup may find a few more or less."""
    return {name: table.rows for name, table in planned.tables.items()}


def _rows(fingerprint: Fingerprint) -> int:
    return sum(table.rows for table in fingerprint.tables.values())


def _summary(connection: str, fingerprint: Fingerprint) -> str:
    tables = counted(len(fingerprint.tables), "table")
    return f"new backup of {connection}: {tables}, {counted(_rows(fingerprint), 'row')}"


class BackupKind(PayloadKind):
    def plan(
        self, ctx: PlanContext, address: str, spec: Backup, record: ResourceRecord | None
    ) -> list[Action]:
        document = spec_document(ctx.manifest, spec, [spec.connection])
        writers = ctx.written_before(address, spec.connection)
        if writers:
            main = after_writers(ctx, address, spec, document, record, writers)
            return [main, *prune_action(spec, record, main)]
        if ctx.is_missing(spec.connection):
            link = ctx.workspace.connection(spec.connection).link
            raise PlanError(
                f"database {spec.connection} ({link}) does not exist: nothing to back up"
            )
        previous = Fingerprint.from_dict(record.fingerprints["read"]) if record else None
        live = ctx.fingerprint(spec.connection, spec.tables, previous=previous)
        main = decide(address, spec, document, record, previous, live, latest_damage(record))
        return [main, *prune_action(spec, record, main)]

    def plan_removed(self, ctx: PlanContext, record: ResourceRecord) -> list[Action]:
        ids = tuple(artifact["id"] for artifact in record.artifacts)
        reason = (
            f"delete its {counted(len(ids), 'backup')}: {', '.join(ids)}"
            if ids
            else "no backups on disk"
        )
        payload = PruneBackups(record.spec, ids=ids, forget=True)
        return [removed_action(record, reason, payload, destructive=bool(ids))]

    # -- apply ----------------------------------------------------------------------------

    def _take_planned(self, ctx: ApplyContext, action: Action) -> Outcome:
        planned = action.payload
        assert isinstance(planned, TakeBackup)
        engine = ctx.workspace.reach(planned.connection)
        existing = set(present_tables(engine, "all"))
        if planned.planned_after:
            spec = ctx.manifest.backups[action.address.split(".", 1)[1]]
            refuse_moved(tables_beyond(planned, existing, spec.tables))
        refuse_moved(
            (
                f"table {table} is gone from {planned.connection} since the plan"
                for table in planned.tables
                if table not in existing
            ),
        )
        return self.take(ctx, action.address, planned, ctx.record(action.address))

    def take(
        self,
        ctx: ApplyContext,
        address: str,
        planned: TakeBackup,
        record: ResourceRecord | None,
    ) -> Outcome:
        """Take the planned backup now and record it as the newest, with the fingerprint of
        the data it holds: the planned one when the data provably did not move since; else
        SQLite tables are fingerprinted in the backup's snapshot (from unchanged pages, or
        their rows hashed as the backup reads them), and other databases fingerprinted
        before it reads, so that a change made meanwhile shows as a change at the next plan."""
        engine = ctx.workspace.reach(planned.connection)
        previous = Fingerprint.from_dict(planned.fingerprint)
        tables = list(planned.tables)
        reading = FingerprintWhileReading(engine, tables, previous=previous)
        root = ctx.workspace.backups_dir(address.split(".", 1)[1])
        info = write_backup(
            engine,
            root,
            new_backup_id(dt.datetime.now(dt.UTC)),
            tables,
            progress=ctx.table_progress(address, planned.rows),
            observer=reading,
            cancel=ctx.cancel,
        )
        fingerprint = reading.result(info.table_names)
        artifact = {**info.to_dict(), "path": str(info.path), "fingerprint": fingerprint.to_dict()}
        artifacts = [artifact, *(record.artifacts if record else [])]
        return Outcome(
            make_record(
                address,
                KIND,
                planned.spec,
                fingerprints={"read": fingerprint.to_dict()},
                artifacts=artifacts,
            ),
            rows=info.total_rows,
            bytes=info.total_bytes,
            message=f"backup {info.id} written to {info.path}",
            result=info,
        )

    def _prune_planned(self, ctx: ApplyContext, action: Action) -> Outcome:
        planned = action.payload
        assert isinstance(planned, PruneBackups)
        record = ctx.record(action.address)
        artifacts = record.artifacts if record else []
        doomed = set(planned.ids)
        freed = _delete(artifacts, doomed)
        if planned.forget or record is None:
            return Outcome(None, bytes=freed, message=f"deleted {counted(len(doomed), 'backup')}")
        kept = [a for a in artifacts if a["id"] not in doomed]
        return Outcome(
            make_record(
                record.address, KIND, record.spec, fingerprints=record.fingerprints, artifacts=kept
            ),
            bytes=freed,
            message=f"pruned {counted(len(doomed), 'backup')}",
        )

    handlers: ClassVar[dict[type[Payload], Handler]] = {
        TakeBackup: _take_planned,
        PruneBackups: _prune_planned,
    }


def after_writers(
    ctx: PlanContext,
    address: str,
    spec: Backup,
    document: Spec,
    record: ResourceRecord | None,
    writers: list[Action],
) -> Action:
    """The backup of a connection that `writers` write earlier in this plan: of the tables
    they leave there, as their plans tell (`upstream`)."""
    tables, held = tables_after(ctx, spec.connection, writers, spec.tables)
    by = written_by(writers)
    rows = {table: count for table in tables if (count := held[table]) is not None}
    counts = counted(sum(rows.values()), "row") if len(rows) == len(tables) else "rows counted then"
    take = TakeBackup(
        document,
        connection=spec.connection,
        tables=tuple(tables),
        rows=rows,
        fingerprint=Fingerprint({}).to_dict(),
        planned_after=tuple(writer.key for writer in writers),
    )
    summary = (
        f"new backup of {spec.connection} once {by} has written it: "
        f"{counted(len(tables), 'table')} ({', '.join(tables)}), {counts}; applied if it "
        "then holds these tables"
    )
    reasons: tuple[str, ...] = (summary,)
    if record is None:
        type_ = ActionType.CREATE
    elif _data_part(record.spec) != _data_part(document):
        type_, reasons = ActionType.UPDATE, (*spec_changes(record.spec, document), summary)
    else:
        type_ = ActionType.RESYNC
    return Action.on(address, KIND, type_, take, reasons=reasons)


def tables_beyond(
    planned: TakeBackup, existing: Collection[str], chosen: Collection[str] | None
) -> list[str]:
    """The tables a backup of a connection written earlier in this apply would hold beyond
    those its plan showed (pure): a backup of every table backs up every table there."""
    if chosen is not None:
        return []
    return [
        f"table {table} is in {planned.connection} once {', '.join(planned.planned_after)} "
        "applied; the plan did not show it"
        for table in sorted(set(existing) - set(planned.tables))
    ]


def latest_damage(record: ResourceRecord | None) -> str | None:
    """Why the latest recorded backup cannot serve (missing, or unlike its record), if so."""
    latest = record.artifacts[0] if record and record.artifacts else None
    if latest is None:
        return "no backup recorded"
    if not Path(latest["path"]).is_dir():
        return f"latest backup {latest['id']} is missing from {latest['path']}"
    try:
        check_backup(Path(latest["path"]), recorded=latest)
    except BackupError as error:
        return f"the latest backup is damaged: {error.message}"
    return None


def decide(
    address: str,
    spec: Backup,
    document: Spec,
    record: ResourceRecord | None,
    previous: Fingerprint | None,
    live: Fingerprint,
    damage: str | None = None,
) -> Action:
    """The backup's main action, from the spec, its record, the live data and what is wrong
    with the latest backup on disk (`damage`, from `latest_damage`), if anything (pure)."""
    take = TakeBackup(
        document,
        connection=spec.connection,
        tables=tuple(sorted(live.tables)),
        rows=_expected_rows(live),
        fingerprint=live.to_dict(),
    )
    if record is None:
        return Action.on(
            address, KIND, ActionType.CREATE, take, reasons=(_summary(spec.connection, live),)
        )
    if record.spec != document:
        data_changed = _data_part(record.spec) != _data_part(document)
        reasons = tuple(spec_changes(record.spec, document))
        if not data_changed:
            return Action.on(
                address, KIND, ActionType.UPDATE, RecordSettings(document), reasons=reasons
            )
        reasons += (_summary(spec.connection, live),)
        return Action.on(address, KIND, ActionType.UPDATE, take, reasons=reasons)
    if damage is not None:
        return Action.on(address, KIND, ActionType.RESYNC, take, reasons=(damage,))
    changes = describe_changes(previous, live) if previous else ["no fingerprint recorded"]
    if changes:
        return Action.on(address, KIND, ActionType.RESYNC, take, reasons=tuple(changes))
    latest = record.artifacts[0]["id"]
    return Action.on(
        address,
        KIND,
        ActionType.NOOP,
        Unchanged(document),
        reasons=(f"latest backup {latest} reflects the current data",),
    )


def prune_action(spec: Backup, record: ResourceRecord | None, main: Action) -> list[Action]:
    """The prune of backups past `keep`, counting the one `main` adds (pure)."""
    if record is None:
        return []
    adds_one = isinstance(main.payload, TakeBackup)
    keep_old = spec.keep - 1 if adds_one else spec.keep
    ids = tuple(artifact["id"] for artifact in record.artifacts[keep_old:])
    if not ids:
        return []
    return [
        Action(
            key=main.address + PRUNE,
            address=main.address,
            kind=KIND,
            type=ActionType.DESTROY,
            payload=PruneBackups(record.spec, ids=ids),
            reasons=(
                f"prune {counted(len(ids), 'old backup')} (keep: {spec.keep}): " + ", ".join(ids),
            ),
            destructive=True,
            depends_on=(main.key,) if main.is_change else (),
        )
    ]


def _delete(artifacts: list[dict[str, Any]], doomed: set[str]) -> int:
    """Delete the backup folders of `doomed` ids; return the bytes freed."""
    freed = 0
    for artifact in artifacts:
        if artifact["id"] in doomed and Path(artifact["path"]).is_dir():
            freed += artifact.get("total_bytes", 0)
            shutil.rmtree(artifact["path"])
    return freed
