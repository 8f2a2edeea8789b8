"""teardown.<name>: these tables, or this whole database, are gone.

Always destructive: the plan lists what would be dropped, with row counts, and a final backup
is taken first unless the manifest opts out. A protected connection refuses at plan time.
Already gone -> no-op.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from dsdb_plan.archive import new_backup_id, write_backup
from dsdb_plan.databases import database_exists, drop_database, present_tables
from dsdb_plan.dbschema import drop_tables
from dsdb_plan.kinds.base import (
    ApplyContext,
    ForgettingKind,
    Outcome,
    PlanContext,
    make_record,
    refuse_if_protected,
    spec_document,
)
from dsdb_plan.models import Teardown
from dsdb_plan.plan import Action, ActionType, counted
from dsdb_plan.state import ResourceRecord

KIND = "teardown"


class TeardownKind(ForgettingKind):
    left_behind = "nothing is dropped"

    def plan(
        self, ctx: PlanContext, address: str, spec: Teardown, record: ResourceRecord | None
    ) -> list[Action]:
        connection = ctx.manifest.connections[spec.connection]
        document = spec_document(ctx.manifest, spec, [spec.connection])
        gone = ctx.is_missing(spec.connection) or (
            spec.drop_database and not database_exists(connection)
        )
        if gone:
            return [
                Action.on(
                    address,
                    KIND,
                    ActionType.NOOP,
                    reasons=(f"{spec.connection} is already gone",),
                    details={"spec": document},
                )
            ]
        engine = ctx.workspace.reach(spec.connection)
        tables = present_tables(engine, spec.tables)
        if not tables and not spec.drop_database:
            return [
                Action.on(
                    address,
                    KIND,
                    ActionType.NOOP,
                    reasons=(f"no listed table is left in {spec.connection}",),
                    details={"spec": document},
                )
            ]
        refuse_if_protected(ctx, spec.connection, address, "teardown")
        fingerprint = ctx.fingerprint(spec.connection, tables or None)
        listed = (
            ", ".join(
                f"{name} ({counted(fingerprint.tables[name].rows, 'row')})" for name in tables
            )
            or "no tables"
        )
        what = (
            f"drop database {spec.connection}"
            if spec.drop_database
            else f"drop {counted(len(tables), 'table')} in {spec.connection}"
        )
        reasons = [f"{what}: {listed}"]
        if spec.final_backup and tables:
            reasons.append(
                f"a final backup is taken first, into "
                f"{ctx.workspace.backups_dir(_final_backup_folder(address))}"
            )
        elif tables:
            reasons.append("no final backup (final_backup: false)")
        return [
            Action.on(
                address,
                KIND,
                ActionType.DESTROY,
                reasons=tuple(reasons),
                destructive=True,
                details={
                    "spec": document,
                    "tables": tables,
                    "rows": sum(fingerprint.tables[t].rows for t in tables),
                },
            )
        ]

    def apply(self, ctx: ApplyContext, action: Action) -> Outcome:
        spec: Teardown = ctx.manifest.teardowns[action.address.split(".", 1)[1]]
        connection = ctx.manifest.connections[spec.connection]
        engine = ctx.workspace.reach(spec.connection)
        tables = present_tables(engine, spec.tables)
        artifacts: list[dict[str, Any]] = []
        if spec.final_backup and tables:
            artifacts.append(self._final_backup(ctx, action.address, engine, tables))
        rows = action.details.get("rows", 0)
        if spec.drop_database:
            ctx.workspace.forget(spec.connection)  # no open connection may hold the database
            drop_database(connection)
        else:
            drop_tables(engine, tables)
        record = make_record(action.address, KIND, action.details["spec"], artifacts=artifacts)
        return Outcome(record, rows=rows, message=f"dropped {', '.join(tables) or 'database'}")

    def _final_backup(
        self, ctx: ApplyContext, address: str, engine: sa.Engine, tables: list[str]
    ) -> dict[str, Any]:
        """The final backup, taken once even if the teardown is resumed after a crash."""
        checkpoint = ctx.checkpoint(address)
        if "final_backup" in checkpoint:
            return dict(checkpoint["final_backup"])
        root = ctx.workspace.backups_dir(_final_backup_folder(address))
        backup_id = new_backup_id(dt.datetime.now(dt.UTC))
        info = write_backup(engine, root, backup_id, tables, cancel=ctx.cancel)
        artifact = {**info.to_dict(), "path": str(info.path)}
        ctx.store.save_checkpoint(address, {"final_backup": artifact})
        return artifact


def _final_backup_folder(address: str) -> str:
    return "_teardown-" + address.split(".", 1)[1]
