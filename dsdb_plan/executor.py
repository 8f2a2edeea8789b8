"""Apply a Plan: actions in order, each one's outcome recorded in state as it finishes.

An action whose dependency failed or was skipped is skipped; independent actions still
run. Every finished action writes its record (and clears its checkpoint) in one state
transaction and appends a history entry, so a killed apply is resumed by the next plan.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dsdb_plan.errors import DsdbError
from dsdb_plan.kinds import ApplyContext, Outcome, kind_of
from dsdb_plan.kinds.base import host_name, now_iso
from dsdb_plan.plan import Action, Plan
from dsdb_plan.redact import redact
from dsdb_plan.state import HistoryEntry, StateStore


@dataclass(frozen=True)
class ActionResult:
    """How one action ended: ok, failed or skipped."""

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
    def ok(self) -> bool:
        return not self.failed and not self.skipped


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
    on_start: Callable[[Action], None] | None = None,
    on_result: ResultCallback | None = None,
) -> ApplyReport:
    """Run every change of `plan` in order and record each outcome."""
    report = ApplyReport()
    not_done: dict[str, str] = {}
    for action in plan.changes:
        blocked = [d for d in action.depends_on if d in not_done]
        if blocked:
            result = ActionResult(
                action.key,
                action.address,
                "skipped",
                f"skipped: {blocked[0]} {not_done[blocked[0]]}",
            )
            not_done[action.key] = "was skipped"
        else:
            if on_start:
                on_start(action)
            result = _run(action, ctx, user)
            if result.status != "ok":
                not_done[action.key] = "failed"
        report.results.append(result)
        if on_result:
            on_result(action, result)
    return report


def _run(action: Action, ctx: ApplyContext, user: str) -> ActionResult:
    started_at, started = now_iso(), time.monotonic()
    try:
        outcome = kind_of(action.kind).apply(ctx, action)
        _record(ctx.store, action, outcome)
        status, message = "ok", outcome.message
    except DsdbError as error:
        outcome, status, message = Outcome(None), "failed", redact(error.message)
    except Exception as error:  # one broken action must not stop independent ones
        outcome, status = Outcome(None), "failed"
        message = redact(f"{type(error).__name__}: {error}")
    duration = round(time.monotonic() - started, 3)
    ctx.store.append_history(
        HistoryEntry(
            address=action.key,
            action=action.type.value,
            user=user,
            host=host_name(),
            started_at=started_at,
            finished_at=now_iso(),
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


def _record(store: StateStore, action: Action, outcome: Outcome) -> None:
    if outcome.record is not None:
        store.put_resource(outcome.record)
    elif action.address in store.read().resources:
        store.remove_resource(action.address)
