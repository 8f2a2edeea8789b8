"""Is a saved plan still true? Compare what it was made against with the present."""

from __future__ import annotations

from dsdb_plan.errors import StalePlanError
from dsdb_plan.fingerprint import Fingerprint, describe_changes
from dsdb_plan.manifest import LoadedManifest
from dsdb_plan.plan import Plan
from dsdb_plan.state import StateSnapshot
from dsdb_plan.workspace import Workspace


def stale_reasons(
    plan: Plan, loaded: LoadedManifest, snapshot: StateSnapshot, workspace: Workspace
) -> list[str]:
    """Everything that moved since `plan` was made; empty when it still holds."""
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
    for key, recorded in sorted(plan.fingerprints.items()):
        connection, _, table_list = key.partition(":")
        tables = None if table_list == "*" else table_list.split(",")
        before = Fingerprint.from_dict(recorded)
        if connection not in workspace.connections:
            continue
        now = workspace.fingerprint(connection, tables, previous=before)
        reasons += [
            f"data in {connection} changed: {line}" for line in describe_changes(before, now)
        ]
    return reasons


def ensure_fresh(
    plan: Plan, loaded: LoadedManifest, snapshot: StateSnapshot, workspace: Workspace
) -> None:
    reasons = stale_reasons(plan, loaded, snapshot, workspace)
    if reasons:
        raise StalePlanError(
            "the saved plan is stale and was not applied:\n"
            + "\n".join(f"  - {reason}" for reason in reasons)
            + "\nRun `dsdb plan` again."
        )
