"""A manifest opened for work: its workspace and state store, with plan and apply.

The CLI and the notebook API both go through here, so a plan shown is the plan applied.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dsdb_plan.executor import ActionResult, ApplyReport, apply_moves, execute
from dsdb_plan.freshness import ensure_fresh
from dsdb_plan.graph import io_conflict
from dsdb_plan.kinds import ApplyContext
from dsdb_plan.kinds.base import ProgressCallback
from dsdb_plan.manifest import LoadedManifest, load_manifest
from dsdb_plan.plan import Action, Plan
from dsdb_plan.planner import make_plan
from dsdb_plan.state import LockInfo, StateStore, open_state
from dsdb_plan.workspace import Workspace, current_user

if TYPE_CHECKING:
    from dsdb_plan.kinds.migration import TableVerdict
    from dsdb_plan.migrate.verify import VerifyLevel


@dataclass
class Project:
    """One manifest with its connections, backup folder and state store."""

    loaded: LoadedManifest
    workspace: Workspace
    store: StateStore

    @classmethod
    def open(
        cls,
        manifest: str | Path,
        *,
        variables: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> Project:
        loaded = load_manifest(manifest, variables=variables)
        settings = loaded.manifest.settings
        workspace = Workspace(
            connections=dict(loaded.manifest.connections),
            backup_root=loaded.resolve(settings.backup_root),
            user=user or current_user(),
            base_dir=loaded.base_dir,
        )
        store = open_state(settings.state, loaded.base_dir)
        return cls(loaded=loaded, workspace=workspace, store=store)

    @property
    def user(self) -> str:
        return self.workspace.user

    def plan(
        self,
        *,
        targets: Collection[str] = (),
        excludes: Collection[str] = (),
        parallelism: int = 1,
    ) -> Plan:
        """What apply would do now, planning up to `parallelism` resources at once. Reads only."""
        return make_plan(
            self.loaded,
            self.workspace,
            self.store.read(),
            targets=targets,
            excludes=excludes,
            parallelism=parallelism,
        )

    @contextmanager
    def locked(self, operation: str, timeout: float | None = None) -> Iterator[LockInfo]:
        wait = self.loaded.manifest.settings.lock_timeout if timeout is None else timeout
        with self.store.lock(operation, self.user, timeout=wait) as info:
            yield info

    def verify(
        self, addresses: Collection[str] = (), level: VerifyLevel | None = None
    ) -> Iterator[TableVerdict]:
        """Compare each migration's target (or those in `addresses`) with its source subset,
        table by table: at `level`, else at each migration's own `verify`."""
        from dsdb_plan.kinds.migration import verify_migration  # the copy code, for verify alone

        snapshot = self.store.read()
        for name, spec in sorted(self.loaded.manifest.migrations.items()):
            address = f"migration.{name}"
            if not addresses or address in addresses:
                yield from verify_migration(
                    self.workspace, address, spec, snapshot.resources.get(address), level
                )

    def ensure_fresh(self, plan: Plan, *, parallelism: int = 1) -> None:
        """Refuse a saved `plan` when the manifest, the state or the data it relied on moved,
        reading the data again up to `parallelism` fingerprints at once."""
        ensure_fresh(plan, self.loaded, self.store.read(), self.workspace, parallelism=parallelism)

    def apply(
        self,
        plan: Plan,
        *,
        parallelism: int = 1,
        progress: ProgressCallback | None = None,
        on_start: Callable[[Action], None] | None = None,
        on_result: Callable[[Action, ActionResult], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ApplyReport:
        """Run `plan` (hold `locked("apply")` around planning and applying). Setting `cancel`
        stops it at the running actions' next batch boundaries (see `executor.execute`)."""
        apply_moves(plan, self.store)
        self.workspace.create_missing = True  # the plan said which databases it creates
        ctx = ApplyContext(
            manifest=self.loaded.manifest,
            workspace=self.workspace,
            store=self.store,
            progress=progress,
            parallelism=parallelism,
            cancel=cancel if cancel is not None else threading.Event(),
        )
        return execute(
            plan,
            ctx,
            user=self.user,
            parallelism=parallelism,
            conflict=io_conflict(self.loaded.manifest),
            on_start=on_start,
            on_result=on_result,
        )

    def close(self) -> None:
        self.workspace.close()
        self.store.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
