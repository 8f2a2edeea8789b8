"""teardown.<name>: these tables, or this whole database, are gone.

Always destructive: the plan lists what would be dropped, with row counts, and a final backup
is taken first unless the manifest opts out. A protected connection refuses at plan time.
Already gone -> no-op. Apply drops exactly the tables the plan listed, and refuses when a
table appeared or gained rows since, since the reviewer never saw those.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa

from dsdb_plan.archive import new_backup_id, read_backup_info, write_backup
from dsdb_plan.databases import database_exists, drop_database, present_tables, row_counts
from dsdb_plan.dbschema import drop_tables
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
)
from dsdb_plan.models import Teardown
from dsdb_plan.payloads import DropTables, Payload, Spec, Unchanged
from dsdb_plan.plan import Action, ActionType, counted
from dsdb_plan.state import ResourceRecord

KIND = "teardown"


@dataclass(frozen=True)
class TeardownObservation:
    """What the connection holds that a teardown touches: `rows` of each listed table
    present (empty when `gone`, the database missing)."""

    gone: bool
    rows: dict[str, int]


def decide(
    address: str,
    spec: Teardown,
    document: Spec,
    seen: TeardownObservation,
    *,
    protected: bool,
    final_backup: str,
) -> Action:
    """The teardown's action, from what was observed (pure). `final_backup`: the folder
    the final backup would go to."""
    if seen.gone or (not seen.rows and not spec.drop_database):
        why = (
            f"{spec.connection} is already gone"
            if seen.gone
            else f"no listed table is left in {spec.connection}"
        )
        return Action.on(address, KIND, ActionType.NOOP, Unchanged(document), reasons=(why,))
    if protected:
        raise protected_refusal(address, spec.connection, "teardown")
    tables = tuple(seen.rows)
    listed = ", ".join(f"{name} ({counted(rows, 'row')})" for name, rows in seen.rows.items())
    what = (
        f"drop database {spec.connection}"
        if spec.drop_database
        else f"drop {counted(len(tables), 'table')} in {spec.connection}"
    )
    reasons = [f"{what}: {listed or 'no tables'}"]
    backup = spec.final_backup and bool(tables)
    if backup:
        reasons.append(f"a final backup is taken first, into {final_backup}")
    elif tables:
        reasons.append("no final backup (final_backup: false)")
    payload = DropTables(
        document,
        connection=spec.connection,
        tables=tables,
        rows=dict(seen.rows),
        drop_database=spec.drop_database,
        final_backup=final_backup if backup else None,
    )
    return Action.on(
        address, KIND, ActionType.DESTROY, payload, reasons=tuple(reasons), destructive=True
    )


def moved_since(planned: DropTables, rows_now: dict[str, int], listed_only: bool) -> list[str]:
    """What changed among the tables a planned teardown touches (pure): a table that appeared
    (where the teardown takes every table) or holds more rows than the plan showed."""
    lines = []
    if not listed_only:
        lines += [
            f"table {table} appeared in {planned.connection} (the plan did not show it)"
            for table in sorted(set(rows_now) - set(planned.tables))
        ]
    for table in planned.tables:
        was, now = planned.rows.get(table, 0), rows_now.get(table)
        if now is not None and now > was:
            lines.append(
                f"table {table} in {planned.connection} holds {counted(now, 'row')}, "
                f"the plan showed {was:,}"
            )
    return lines


def _observe(ctx: PlanContext, spec: Teardown) -> TeardownObservation:
    connection = ctx.manifest.connections[spec.connection]
    if ctx.is_missing(spec.connection) or (spec.drop_database and not database_exists(connection)):
        return TeardownObservation(gone=True, rows={})
    tables = present_tables(ctx.workspace.reach(spec.connection), spec.tables)
    if not tables:
        return TeardownObservation(gone=False, rows={})
    fingerprint = ctx.fingerprint(spec.connection, tables)
    return TeardownObservation(
        gone=False, rows={name: fingerprint.tables[name].rows for name in tables}
    )


class TeardownKind(ForgettingKind):
    left_behind = "nothing is dropped"

    def plan(
        self, ctx: PlanContext, address: str, spec: Teardown, record: ResourceRecord | None
    ) -> list[Action]:
        document = spec_document(ctx.manifest, spec, [spec.connection])
        return [
            decide(
                address,
                spec,
                document,
                _observe(ctx, spec),
                protected=ctx.manifest.connections[spec.connection].protect,
                final_backup=str(ctx.workspace.backups_dir(_final_backup_folder(address))),
            )
        ]

    # -- apply ----------------------------------------------------------------------------

    def _drop(self, ctx: ApplyContext, action: Action) -> Outcome:
        planned = action.payload
        assert isinstance(planned, DropTables)
        engine = ctx.workspace.reach(planned.connection)
        listed = planned.spec.get("tables", "all")
        now = present_tables(engine, listed)
        refuse_moved(moved_since(planned, row_counts(engine, now), listed != "all"))
        tables = [table for table in planned.tables if table in now]
        artifacts: list[dict[str, Any]] = []
        if planned.final_backup is not None and tables:
            artifacts.append(self._final_backup(ctx, action.key, engine, tables, planned))
        final = read_backup_info(Path(artifacts[0]["path"])) if artifacts else None
        if planned.drop_database:
            ctx.workspace.forget(planned.connection)  # no open connection may hold the database
            drop_database(ctx.manifest.connections[planned.connection])
        else:
            drop_tables(engine, tables)
        record = make_record(action.address, KIND, planned.spec, artifacts=artifacts)
        rows = sum(planned.rows.get(table, 0) for table in tables)
        message = f"dropped {', '.join(tables) or 'database'}"
        return Outcome(record, rows=rows, message=message, result=final)

    handlers: ClassVar[dict[type[Payload], Handler]] = {DropTables: _drop}

    def _final_backup(
        self,
        ctx: ApplyContext,
        address: str,
        engine: sa.Engine,
        tables: list[str],
        planned: DropTables,
    ) -> dict[str, Any]:
        """The final backup, taken once even if the teardown is resumed after a crash."""
        checkpoint = ctx.checkpoint(address)
        if "final_backup" in checkpoint:
            return dict(checkpoint["final_backup"])
        assert planned.final_backup is not None
        backup_id = new_backup_id(dt.datetime.now(dt.UTC))
        root = Path(planned.final_backup)
        info = write_backup(engine, root, backup_id, tables, cancel=ctx.cancel)
        artifact = {**info.to_dict(), "path": str(info.path)}
        ctx.store.save_checkpoint(address, {"final_backup": artifact})
        return artifact


def _final_backup_folder(address: str) -> str:
    return "_teardown-" + address.split(".", 1)[1]
