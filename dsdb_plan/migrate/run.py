"""Run one migration: every selected table in foreign-key order, resumably, verified.

For each table: make sure the target table can hold the data (create it, or add columns
when the schema may evolve), copy it in committed batches with a checkpoint after each,
create its indexes and advance its sequences, then verify the target against the source
subset. The checkpoint names the finished tables and the table in progress, so a killed run
resumes after the last committed batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dsdb_plan.archive.format import decode_value, encode_value
from dsdb_plan.errors import DsdbError
from dsdb_plan.migrate.copier import Mode, copy_table
from dsdb_plan.migrate.subset import TableSelection
from dsdb_plan.migrate.target import (
    SchemaChanges,
    ensure_target,
    finish_target,
    inspect_target,
)
from dsdb_plan.migrate.verify import verify_table

EXACT_MODES = ("replace", "mirror")


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


@dataclass(frozen=True)
class TableOutcome:
    """What copying one table did."""

    table: str
    target: str
    rows_copied: int
    rows_deleted: int
    high_water: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "target": self.target,
            "rows_copied": self.rows_copied,
            "rows_deleted": self.rows_deleted,
            "high_water": encode_value(self.high_water),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableOutcome:
        return cls(
            data["table"],
            data["target"],
            int(data["rows_copied"]),
            int(data["rows_deleted"]),
            decode_value(data["high_water"]),
        )


Checkpoint = dict[str, Any]
ProgressFn = Callable[[str, int, int | None], None]


def run_migration(
    source: sa.Engine,
    target: sa.Engine,
    runs: Sequence[TableRun],
    *,
    batch_size: int,
    schema_changes: SchemaChanges,
    resume: Mapping[str, Any] | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    progress: ProgressFn | None = None,
) -> list[TableOutcome]:
    """Copy every table of `runs` (parents first) and verify each; return what was done.

    `resume` is the last checkpoint of an interrupted run of the same migration: tables it
    lists as done are skipped, the table in progress continues after its last batch.
    """
    done = {
        name: TableOutcome.from_dict(outcome)
        for name, outcome in (resume or {}).get("done", {}).items()
    }
    current = (resume or {}).get("current") or {}
    known = {run.selection.name: run.selection.target for run in runs}

    def report(state: Checkpoint) -> None:
        if on_checkpoint is not None:
            on_checkpoint({"done": {n: o.to_dict() for n, o in done.items()}, **state})

    for run in runs:
        name = run.selection.name
        if name in done:
            continue
        done[name] = _copy_one(
            source,
            target,
            run,
            batch_size=batch_size,
            schema_changes=schema_changes,
            known=known,
            resume=current if current.get("table") == name else None,
            on_checkpoint=lambda copy_state: report({"current": copy_state}),
            progress=(lambda rows, label=name: progress(label, rows, None))  # type: ignore[misc]
            if progress
            else None,
        )
        report({})
    return [done[run.selection.name] for run in runs]


def _copy_one(
    source: sa.Engine,
    target: sa.Engine,
    run: TableRun,
    *,
    batch_size: int,
    schema_changes: SchemaChanges,
    known: Mapping[str, str],
    resume: Mapping[str, Any] | None,
    on_checkpoint: Callable[[Checkpoint], None],
    progress: Callable[[int], None] | None,
) -> TableOutcome:
    selection = run.selection
    check = inspect_target(target, selection, schema_changes=schema_changes)
    ensure_target(target, selection, check, known_tables=known)
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
    )
    finish_target(target, selection, known_tables=known)
    with source.connect() as source_conn, target.connect() as target_conn:
        verdict = verify_table(
            source_conn, selection, target_conn, selection.target, exact=run.exact
        )
    if not verdict.ok:
        raise DsdbError(
            f"verification failed for {selection.name} → {selection.target}: {verdict.message}"
        )
    return TableOutcome(
        selection.name, selection.target, result.rows_copied, result.rows_deleted, result.high_water
    )
