"""One resource planned and applied at once, without recorded state: the notebook API's
backups, restores, migrations and teardowns.

They go through the same plan and the same payload handlers as `dsdb apply`, so a library
call checks what a plan checks (protected connections, target tables that cannot hold the
data, data in the way) and does exactly what that plan says. Checkpoints go to a throwaway
store: a notebook call that dies is simply run again. The backups a notebook took are
recorded there as a state records them, so a restore checks each against what it was.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dsdb_plan.kinds import ApplyContext, Outcome, PlanContext, kind_of
from dsdb_plan.kinds.base import make_record
from dsdb_plan.models import Manifest
from dsdb_plan.state import SqliteStateStore, StateSnapshot
from dsdb_plan.workspace import Workspace

_TAKEN = "backup.taken-in-this-session"
_SECTIONS = {
    "backup": "backups",
    "migration": "migrations",
    "restore": "restores",
    "teardown": "teardowns",
}


def run_once(
    workspace: Workspace,
    address: str,
    spec: Any,
    *,
    parallelism: int = 1,
    taken: Sequence[dict[str, Any]] = (),
) -> Outcome:
    """Plan resource `address` (`spec`) as new and apply its plan; the main action's
    outcome (a no-op's is empty). `taken`: the backups (as `BackupInfo.to_dict()`) this
    session took, which a restore checks against."""
    kind_name, name = address.split(".", 1)
    manifest = Manifest(
        version=1,
        connections=dict(workspace.connections),
        **{_SECTIONS[kind_name]: {name: spec}},
    )
    kind = kind_of(kind_name)
    snapshot = StateSnapshot.empty()
    if taken:
        record = make_record(_TAKEN, "backup", {}, artifacts=list(taken))
        snapshot.resources[_TAKEN] = record
    plan = PlanContext(manifest=manifest, workspace=workspace, snapshot=snapshot, chosen={address})
    actions = kind.plan(plan, address, spec, None)
    with tempfile.TemporaryDirectory(prefix="dsdb-") as folder:
        store = SqliteStateStore(Path(folder) / "state.db")
        for record in snapshot.resources.values():
            store.put_resource(record)
        ctx = ApplyContext(manifest, workspace, store, parallelism=parallelism)
        try:
            outcomes = [kind.execute(ctx, action) for action in actions if action.is_change]
        finally:
            store.close()
    return outcomes[0] if outcomes else Outcome(None)
