"""What every resource kind provides, and the contexts planning and applying hand it.

A kind plans without side effects (it may read the databases, the state and the backup
folders) and applies one action at a time, returning the record to store for it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from dsdb_plan.errors import PlanError
from dsdb_plan.fingerprint import Fingerprint
from dsdb_plan.models import Manifest
from dsdb_plan.plan import Action, ActionType
from dsdb_plan.redact import redact
from dsdb_plan.state import ResourceRecord, StateSnapshot, StateStore
from dsdb_plan.state.store import utc_now
from dsdb_plan.workspace import Workspace

ProgressCallback = Callable[[str, int, int | None], None]
"""progress(label, rows_done, rows_total_or_None)"""


@dataclass
class PlanContext:
    """Read-only view of the world for planning, caching live fingerprints.

    Resources are planned in threads (see `planner`), so what they share is guarded.
    """

    manifest: Manifest
    workspace: Workspace
    snapshot: StateSnapshot
    chosen: set[str] = field(default_factory=set)
    """The addresses this plan will act on (all, unless --target/--exclude narrowed it)."""
    planned: dict[str, Action] = field(default_factory=dict)
    """The first action of each resource planned so far; a resource sees those it depends on."""
    fingerprints: dict[str, dict[str, Any]] = field(default_factory=dict)
    _reads: dict[str, threading.Lock] = field(default_factory=dict, init=False, repr=False)
    _reads_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def is_missing(self, connection: str) -> bool:
        return self.workspace.is_missing(connection)

    def fingerprint(
        self, connection: str, tables: list[str] | None, previous: Fingerprint | None = None
    ) -> Fingerprint:
        """Live fingerprint of `tables` (None: all) in `connection`, once per plan: a resource
        asking while another one reads it waits for that read."""
        # One request is one read on one connection: a single snapshot on PostgreSQL (and
        # InnoDB), so its tables always show a state they were in together. Splitting its
        # tables over several connections would give that up, and gain little: PostgreSQL
        # already spreads a large scan over parallel workers. Plans get their concurrency
        # from planning independent resources at once instead.
        key = fingerprint_key(connection, tables)
        with self._read_lock(key):
            if key not in self.fingerprints:
                live = self.workspace.fingerprint(connection, tables, previous=previous)
                self.fingerprints[key] = live.to_dict()
        return Fingerprint.from_dict(self.fingerprints[key])

    def _read_lock(self, key: str) -> threading.Lock:
        with self._reads_lock:
            return self._reads.setdefault(key, threading.Lock())

    def takes_new_backup(self, address: str) -> bool:
        """Whether this plan's action for backup `address` writes a new backup."""
        if address not in self.chosen:
            return False
        action = self.planned.get(address)
        return action is not None and action.is_change and bool(action.details.get("new_backup"))


def fingerprint_key(connection: str, tables: list[str] | None) -> str:
    """How a plan files the fingerprint of `tables` (None: all) in `connection`."""
    return connection + ":" + (",".join(sorted(tables)) if tables else "*")


def split_fingerprint_key(key: str) -> tuple[str, list[str] | None]:
    """The connection and tables (None: all) of a `fingerprint_key`."""
    connection, _, tables = key.partition(":")
    return connection, None if tables == "*" else tables.split(",")


@dataclass
class ApplyContext:
    """What an action may touch while applying: databases, files, and the state store."""

    manifest: Manifest
    workspace: Workspace
    store: StateStore
    progress: ProgressCallback | None = None
    parallelism: int = 1
    cancel: threading.Event = field(default_factory=threading.Event)
    """Set to ask running work to stop at its next batch boundary (which raises
    `Interrupted` there) and to start no more."""

    def table_progress(
        self, address: str, totals: Mapping[str, int]
    ) -> Callable[[str, int], None] | None:
        """A `(table, rows_so_far)` callback reporting under `address`, with each table's
        expected total where known (so a terminal can show an ETA)."""
        progress = self.progress
        if progress is None:
            return None
        return lambda table, rows: progress(f"{address} {table}", rows, totals.get(table))

    def record(self, address: str) -> ResourceRecord | None:
        return self.store.read().resources.get(address)

    def checkpoint(self, address: str) -> dict[str, Any]:
        return self.store.read().checkpoints.get(address, {})


@dataclass(frozen=True)
class Outcome:
    """What applying an action did: the record to store (None forgets it) and its size."""

    record: ResourceRecord | None
    rows: int = 0
    bytes: int = 0
    message: str = ""


class Kind(Protocol):
    """One resource kind: backup, migration, restore or teardown."""

    def plan(
        self, ctx: PlanContext, address: str, spec: Any, record: ResourceRecord | None
    ) -> list[Action]: ...

    def plan_removed(self, ctx: PlanContext, record: ResourceRecord) -> list[Action]:
        """Actions for a recorded resource no longer in the manifest."""
        ...

    def apply(self, ctx: ApplyContext, action: Action) -> Outcome:
        """Apply an action on a resource declared in the manifest."""
        ...

    def apply_removed(self, ctx: ApplyContext, action: Action) -> Outcome:
        """Apply the action `plan_removed` planned."""
        ...


class ForgettingKind:
    """A kind whose removal from the manifest only forgets its record: the data it moved
    stays where it is (`left_behind` says what, in the plan)."""

    left_behind = "its data stays"

    def plan_removed(self, ctx: PlanContext, record: ResourceRecord) -> list[Action]:
        return [removed_action(record, f"the record is forgotten; {self.left_behind}")]

    def apply_removed(self, ctx: ApplyContext, action: Action) -> Outcome:
        return Outcome(None, message="forgotten")


def spec_document(manifest: Manifest, spec: Any, connections: list[str]) -> dict[str, Any]:
    """The spec as recorded in state: the resource's fields plus the connections it uses,
    identified by their masked URL so that pointing a name elsewhere counts as a change."""
    document = spec.model_dump(mode="json", by_alias=True, exclude={"description"})
    document["links"] = {name: manifest.connections[name].display() for name in connections}
    masked: dict[str, Any] = json.loads(redact(json.dumps(document)))
    return masked


def digest(document: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def make_record(
    address: str,
    kind: str,
    spec: dict[str, Any],
    *,
    fingerprints: dict[str, Any] | None = None,
    artifacts: list[dict[str, Any]] | None = None,
    status: str = "applied",
) -> ResourceRecord:
    return ResourceRecord(
        address=address,
        kind=kind,
        spec=spec,
        spec_digest=digest(spec),
        fingerprints=fingerprints or {},
        artifacts=artifacts or [],
        status=status,
        updated_at=utc_now(),
    )


def refuse_if_protected(ctx: PlanContext, connection: str, address: str, what: str) -> None:
    """The one check every destructive plan path makes: `protect: true` refuses it."""
    if ctx.manifest.connections[connection].protect:
        raise PlanError(
            f"{address}: connection '{connection}' is protected (protect: true); {what} is refused"
        )


def removed_action(
    record: ResourceRecord,
    reason: str,
    *,
    destructive: bool = False,
    details: dict[str, Any] | None = None,
) -> Action:
    """The destroy action for a resource that is in state but no longer in the manifest."""
    return Action(
        key=record.address,
        address=record.address,
        kind=record.kind,
        type=ActionType.DESTROY,
        reasons=("removed from the manifest", reason),
        destructive=destructive,
        details={**(details or {}), "removed": True},
    )
