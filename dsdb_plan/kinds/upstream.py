"""Sources that an earlier action of the same plan writes.

A plan cannot read data that is not written yet. When a migration reads a connection that
an action it depends on writes in the same apply, its plan projects the tables that
connection will hold from the payloads of those actions (which say what they write, and how
many rows where they know), and apply plans the copy again from the written source and
refuses it if it would copy other tables than the plan showed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import sqlalchemy as sa

from dsdb_plan.errors import PlanError
from dsdb_plan.kinds.base import PlanContext
from dsdb_plan.payloads import DELETING_MODES, CopyTables, DropTables, Payload, RestoreBackup
from dsdb_plan.plan import Action


def tables_after(
    ctx: PlanContext, connection: str, writers: Sequence[Action], wanted: Sequence[str] | None
) -> tuple[list[str], dict[str, int | None]]:
    """The tables of `connection` a resource reads once `writers` have applied: those it
    wants (None: all), and what `projected_tables` tells of every table there. PlanError
    names the wanted tables neither there now nor written there first."""
    live = (
        []
        if ctx.is_missing(connection)
        else sa.inspect(ctx.workspace.reach(connection)).get_table_names()
    )
    held = projected_tables(live, [writer.payload for writer in writers])
    names = sorted(held) if wanted is None else list(wanted)
    absent = [name for name in names if name not in held]
    if absent:
        raise PlanError(
            f"table{'s' * (len(absent) > 1)} {', '.join(absent)} not in '{connection}', nor "
            f"written there by {written_by(writers)} first"
        )
    return names, held


def written_by(writers: Sequence[Action]) -> str:
    return ", ".join(writer.key for writer in writers)


def projected_tables(live: Collection[str], writers: Sequence[Payload]) -> dict[str, int | None]:
    """The tables a connection will hold once `writers` have applied in order, each with
    its rows where their plans tell (pure): those it holds now (`live`), those the writers
    write, less those they drop. A copy tells the rows of a table it creates or replaces
    whole; a restore or a merge into rows already there does not."""
    held: dict[str, int | None] = dict.fromkeys(live)
    for payload in writers:
        if isinstance(payload, CopyTables):
            for copy in payload.tables:
                exact = copy.rows is not None and not copy.estimated
                whole = copy.target not in held or copy.mode in DELETING_MODES
                held[copy.target] = copy.rows if exact and whole else None
        elif isinstance(payload, RestoreBackup):
            held.update(dict.fromkeys(payload.writes))
        elif isinstance(payload, DropTables):
            dropped = set(held) if payload.drop_database else set(payload.tables)
            held = {table: rows for table, rows in held.items() if table not in dropped}
    return held


def copies_beyond(planned: CopyTables, now: CopyTables) -> list[str]:
    """How the copy planned again at apply (`now`) differs from the one the plan showed
    (`planned`, from a projected source), a line each (pure). Tables that `follow` adds are
    allowed where the plan said it would add some, and a resync may leave tables as they
    are."""
    shown = {(c.table, c.target, c.mode) for c in planned.tables}
    found = {(c.table, c.target, c.mode) for c in now.tables}
    added = [] if planned.follows_more else sorted(found - shown)
    # A resync leaves the tables the writers did not touch as they are: still selected.
    missing = sorted(c for c in shown - found if c[0] not in now.unchanged)
    return [
        f"{table} → {planned.target}.{target} ({mode}) would be copied; the plan did not show it"
        for table, target, mode in added
    ] + [
        f"{table} → {planned.target}.{target} ({mode}) is not in {planned.source} once "
        f"{', '.join(planned.planned_after)} applied"
        for table, target, mode in missing
    ]
