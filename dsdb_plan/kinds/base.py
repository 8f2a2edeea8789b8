"""What every resource kind provides, and the contexts planning and applying hand it.

A kind plans without side effects (it may read the databases, the state and the backup
folders) into actions with typed payloads, and executes one payload at a time: exactly what
it says, after checking that what it relied on still holds, returning the record to store.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from dsdb_plan.errors import DsdbError, PlanError, StalePlanError
from dsdb_plan.fingerprint import Fingerprint
from dsdb_plan.models import Manifest
from dsdb_plan.payloads import Forget, Payload, RecordSettings, TakeBackup
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
    upstream: Mapping[str, Collection[str]] = field(default_factory=dict)
    """The addresses each address depends on, directly or through others."""
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
        shared = Fingerprint.from_dict(self.fingerprints[key])
        # Counts stand for a table only beside a record of counts (a first copy's): a
        # resource whose record is of the other sort reads for itself.
        if shared.counted() != (previous is not None and previous.counted()):
            return self.workspace.fingerprint(connection, tables, previous=previous)
        return shared

    def _read_lock(self, key: str) -> threading.Lock:
        with self._reads_lock:
            return self._reads.setdefault(key, threading.Lock())

    def written_before(self, address: str, connection: str) -> list[Action]:
        """The changes of this plan, applied before `address`, that write `connection`."""
        return [
            action
            for dependency in sorted(self.upstream.get(address, ()))
            if dependency in self.chosen
            and (action := self.planned.get(dependency)) is not None
            and action.is_change
            and action.payload.written_connection() == connection
        ]

    def takes_new_backup(self, address: str) -> bool:
        """Whether this plan's action for backup `address` writes a new backup."""
        if address not in self.chosen:
            return False
        action = self.planned.get(address)
        return action is not None and isinstance(action.payload, TakeBackup)


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
    """What applying an action did: the record to store (None forgets it), its size, and
    what it made (`result`: the BackupInfo, RestoreResult or table outcomes the notebook
    API returns)."""

    record: ResourceRecord | None
    rows: int = 0
    bytes: int = 0
    message: str = ""
    result: Any = None


class Kind(Protocol):
    """One resource kind: backup, migration, restore or teardown."""

    def plan(
        self, ctx: PlanContext, address: str, spec: Any, record: ResourceRecord | None
    ) -> list[Action]: ...

    def plan_removed(self, ctx: PlanContext, record: ResourceRecord) -> list[Action]:
        """Actions for a recorded resource no longer in the manifest."""
        ...

    def execute(self, ctx: ApplyContext, action: Action) -> Outcome:
        """Do exactly what `action.payload` says."""
        ...


Handler = Callable[[Any, ApplyContext, Action], Outcome]


class PayloadKind:
    """A kind that executes payloads by their type, from `handlers`; every kind can record
    new settings and forget a resource removed from the manifest. A payload type the kind
    has no handler for is a loud error, never a guess."""

    handlers: ClassVar[dict[type[Payload], Handler]] = {}

    def execute(self, ctx: ApplyContext, action: Action) -> Outcome:
        handler = {**_COMMON_HANDLERS, **self.handlers}.get(type(action.payload))
        if handler is None:
            raise DsdbError(
                f"{action.key}: a {action.kind} cannot execute a "
                f"'{action.payload.TAG}' payload (the plan file was edited?)"
            )
        return handler(self, ctx, action)


def _record_settings(kind: Any, ctx: ApplyContext, action: Action) -> Outcome:
    """The new spec replaces the recorded one; fingerprints and artifacts stay."""
    record = ctx.record(action.address)
    if record is None:
        raise StalePlanError("its record is gone since the plan was made")
    return Outcome(
        make_record(
            action.address,
            record.kind,
            action.payload.spec,
            fingerprints=record.fingerprints,
            artifacts=record.artifacts,
        ),
        message="recorded the new settings; no data moved",
    )


def _forget(kind: Any, ctx: ApplyContext, action: Action) -> Outcome:
    """The record goes (the executor removes it) and with it any unfinished checkpoint."""
    ctx.store.clear_checkpoint(action.address)
    return Outcome(None, message="forgotten")


_COMMON_HANDLERS: dict[type[Payload], Handler] = {
    RecordSettings: _record_settings,
    Forget: _forget,
}


class ForgettingKind(PayloadKind):
    """A kind whose removal from the manifest only forgets its record: the data it moved
    stays where it is (`left_behind` says what, in the plan)."""

    left_behind = "its data stays"

    def plan_removed(self, ctx: PlanContext, record: ResourceRecord) -> list[Action]:
        return [removed_action(record, f"the record is forgotten; {self.left_behind}", Forget({}))]


def refuse_moved(moved: Iterable[str]) -> None:
    """Refuse to execute an action whose plan no longer holds, naming what moved (the
    executor names the action)."""
    lines = list(moved)
    if lines:
        raise StalePlanError(
            "not applied, the plan no longer holds:\n"
            + "\n".join(f"  - {line}" for line in lines)
            + "\nRun `dsdb plan` again."
        )


def without_defaults(document: dict[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`document` without the fields that hold their default: a field added later then reads
    as the records made before it existed."""
    for name, default in defaults.items():
        if document.get(name) == default:
            document.pop(name, None)
    return document


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
        raise protected_refusal(address, connection, what)


def protected_refusal(address: str, connection: str, what: str) -> PlanError:
    """The refusal of a destructive action on a connection with `protect: true`."""
    return PlanError(
        f"{address}: connection '{connection}' is protected (protect: true); {what} is refused"
    )


def removed_action(
    record: ResourceRecord, reason: str, payload: Payload, *, destructive: bool = False
) -> Action:
    """The destroy action for a resource that is in state but no longer in the manifest."""
    return Action(
        key=record.address,
        address=record.address,
        kind=record.kind,
        type=ActionType.DESTROY,
        payload=payload,
        reasons=("removed from the manifest", reason),
        destructive=destructive,
    )
