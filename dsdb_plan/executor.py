"""Apply a Plan: actions in order, each one's outcome recorded in state as it finishes.

An action whose dependency failed or was skipped is skipped; independent actions still
run. The data lives in other databases than the state, so the two cannot commit together:
an action commits its data first (in checkpointed batches), then writes its record and
clears its checkpoint in one state transaction, then appends a history entry. State never
claims what did not happen; work committed but not yet recorded is found by the next plan
and redone idempotently, so a killed apply is resumed by the next one.

An apply asked to stop (`ApplyContext.cancel`, which the CLI sets on a first Ctrl-C) starts
no more actions, and each running one stops at its next batch boundary, once that batch is
committed and checkpointed: it is reported as interrupted, and the next apply resumes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from dsdb_plan.dag import run_dag
from dsdb_plan.errors import DsdbError, Interrupted, driver_message, rows_committed
from dsdb_plan.kinds import ApplyContext, Outcome, kind_of
from dsdb_plan.plan import Action, Plan
from dsdb_plan.redact import redact
from dsdb_plan.state import HistoryEntry, StateStore
from dsdb_plan.state.store import this_host, utc_now


@dataclass(frozen=True)
class ActionResult:
    """How one action ended: ok, failed, skipped, or interrupted (stopped on request, or
    not started because of it)."""

    key: str
    address: str
    status: str
    message: str = ""
    rows: int = 0
    bytes: int = 0
    duration_s: float = 0.0


@dataclass
class ApplyReport:
    results: list[ActionResult] = field(default_factory=list)

    @property
    def failed(self) -> list[ActionResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def skipped(self) -> list[ActionResult]:
        return [r for r in self.results if r.status == "skipped"]

    @property
    def interrupted(self) -> list[ActionResult]:
        return [r for r in self.results if r.status == "interrupted"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped and not self.interrupted


ResultCallback = Callable[[Action, ActionResult], None]


def apply_moves(plan: Plan, store: StateStore) -> None:
    """Rename the recorded resources the plan moves (state only, no data is touched)."""
    for old, new in plan.moves:
        store.rename_resource(old, new)


def execute(
    plan: Plan,
    ctx: ApplyContext,
    *,
    user: str,
    parallelism: int = 1,
    conflict: Callable[[Action, Action], bool] | None = None,
    on_start: Callable[[Action], None] | None = None,
    on_result: ResultCallback | None = None,
) -> ApplyReport:
    """Run every change of `plan` and record each outcome.

    Up to `parallelism` actions run at once; an action starts when its dependencies have
    succeeded and no running action `conflict`s with it (they touch the same database).
    Actions are considered in plan order, so with parallelism 1 they run exactly in it.

    Once `ctx.cancel` is set, the actions not started yet end as interrupted, and this
    returns when the running ones have stopped at their next batch boundary. An exception
    raised in this thread (KeyboardInterrupt, where no handler sets `ctx.cancel`) sets it
    and waits the same way before it goes on, unless a stop had been asked for already:
    then it goes on at once, and the running actions stop in the background.
    """
    report = ApplyReport()
    actions = {action.key: action for action in plan.changes}
    ended: dict[str, str] = {}

    def finish(action: Action, result: ActionResult) -> bool:
        ended[action.key] = result.status
        report.results.append(result)
        if on_result:
            on_result(action, result)
        return result.status == "ok"

    def skip(key: str, blocker: str) -> None:
        action = actions[key]
        message = f"skipped: {blocker} {_BLOCKED_BY[ended[blocker]]}"
        finish(action, ActionResult(action.key, action.address, "skipped", message))

    run_dag(
        list(actions),
        {key: action.depends_on for key, action in actions.items()},
        lambda key, _: _run(actions[key], ctx, user),
        lambda key, result: finish(actions[key], result),
        workers=parallelism,
        cancel=ctx.cancel,
        conflict=(lambda a, b: conflict(actions[a], actions[b])) if conflict else None,
        on_start=(lambda key: on_start(actions[key])) if on_start else None,
        on_skip=skip,
        on_unstarted=lambda key: finish(actions[key], _not_started(actions[key])),
    )
    return report


_BLOCKED_BY = {"failed": "failed", "skipped": "was skipped", "interrupted": "was interrupted"}


def _not_started(action: Action) -> ActionResult:
    return ActionResult(action.key, action.address, "interrupted", "not started")


def _run(action: Action, ctx: ApplyContext, user: str) -> ActionResult:
    if ctx.cancel.is_set():  # asked to stop between being scheduled and starting
        return _not_started(action)
    started_at, started = utc_now(), time.monotonic()
    try:
        outcome = kind_of(action.kind).execute(ctx, action)
        _record(ctx.store, action, outcome)
        status, message = "ok", outcome.message
    except Exception as error:  # one broken action must not stop independent ones
        status = "interrupted" if isinstance(error, Interrupted) else "failed"
        outcome, message = Outcome(None, rows_committed(error)), redact(_why(error))
    duration = round(time.monotonic() - started, 3)
    ctx.store.append_history(
        HistoryEntry(
            address=action.key,
            action=action.type.value,
            user=user,
            host=this_host(),
            started_at=started_at,
            finished_at=utc_now(),
            outcome=status,
            rows=outcome.rows,
            bytes=outcome.bytes,
            duration_s=duration,
            message=message,
        )
    )
    return ActionResult(
        action.key, action.address, status, message, outcome.rows, outcome.bytes, duration
    )


def _why(error: Exception) -> str:
    """What an action that raised `error` reports."""
    if isinstance(error, DsdbError):
        return error.message
    if isinstance(error, sa.exc.DBAPIError):
        return f"database error: {driver_message(error)}"
    return f"{type(error).__name__}: {error}"


def _record(store: StateStore, action: Action, outcome: Outcome) -> None:
    if outcome.record is not None:
        store.put_resource(outcome.record)
    elif action.address in store.read().resources:
        store.remove_resource(action.address)
