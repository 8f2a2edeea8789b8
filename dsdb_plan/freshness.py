"""Is a saved plan still true? Compare what it was made against with the present."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dsdb_plan.errors import StalePlanError
from dsdb_plan.fingerprint import Fingerprint, describe_changes
from dsdb_plan.kinds.base import split_fingerprint_key
from dsdb_plan.manifest import LoadedManifest
from dsdb_plan.plan import Plan
from dsdb_plan.state import StateSnapshot
from dsdb_plan.workspace import Workspace


def stale_reasons(
    plan: Plan,
    loaded: LoadedManifest,
    snapshot: StateSnapshot,
    workspace: Workspace,
    *,
    parallelism: int = 1,
) -> list[str]:
    """Everything that moved since `plan` was made; empty when it still holds. The data the
    plan relied on is read again up to `parallelism` fingerprints at once, as the planner
    read it."""
    reasons = []
    if plan.manifest_digest != loaded.digest:
        reasons.append("the manifest was edited since the plan was made")
    if plan.state_lineage and plan.state_lineage != snapshot.lineage:
        reasons.append("the plan was made against a different state (lineage differs)")
    elif plan.state_serial != snapshot.serial:
        reasons.append(
            f"the state changed since the plan was made (serial {plan.state_serial} -> "
            f"{snapshot.serial}: another apply ran)"
        )
    keys = [
        key
        for key in sorted(plan.fingerprints)
        if split_fingerprint_key(key)[0] in workspace.connections
    ]

    def data_changes(key: str) -> list[str]:
        return _data_changes(workspace, key, plan.fingerprints[key])

    pool = ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="dsdb-fresh")
    try:
        for lines in pool.map(data_changes, keys):
            # A backup reads all tables and a migration some: one change, said once.
            reasons += [line for line in lines if line not in reasons]
    finally:
        # Interrupted (Ctrl-C): nothing more starts, and nobody waits for the reads running.
        pool.shutdown(wait=False, cancel_futures=True)
    return reasons


def _data_changes(workspace: Workspace, key: str, recorded: dict[str, Any]) -> list[str]:
    connection, tables = split_fingerprint_key(key)
    before = Fingerprint.from_dict(recorded)
    now = workspace.fingerprint(connection, tables, previous=before)
    return [f"data in {connection} changed: {line}" for line in describe_changes(before, now)]


def ensure_fresh(
    plan: Plan,
    loaded: LoadedManifest,
    snapshot: StateSnapshot,
    workspace: Workspace,
    *,
    parallelism: int = 1,
) -> None:
    reasons = stale_reasons(plan, loaded, snapshot, workspace, parallelism=parallelism)
    if reasons:
        raise StalePlanError(
            "the saved plan is stale and was not applied:\n"
            + "\n".join(f"  - {reason}" for reason in reasons)
            + "\nRun `dsdb plan` again."
        )
