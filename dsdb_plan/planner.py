"""Manifest + recorded state + live fingerprints -> Plan. Reads only; never writes.

Desired resources minus recorded ones are created, recorded minus desired are destroyed,
and the intersection is compared by each kind. Actions come out in dependency order, ties
broken by address, so the same inputs always give the same plan.

Resources are planned concurrently, each once those it depends on are planned (a restore
asks whether its backup takes a new one): planning is mostly waiting for databases to
checksum tables, and independent resources read different databases or share one read
(see `PlanContext.fingerprint`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from dsdb_plan.dag import topological_order
from dsdb_plan.engines import engine_for
from dsdb_plan.errors import DsdbError, PlanError, did_you_mean, driver_message
from dsdb_plan.graph import ancestors, dependencies
from dsdb_plan.kinds import PlanContext, kind_of
from dsdb_plan.kinds.base import split_fingerprint_key
from dsdb_plan.manifest import LoadedManifest
from dsdb_plan.models import Manifest, Moved, Teardown
from dsdb_plan.payloads import CopyTables, Forget, RestoreBackup
from dsdb_plan.plan import Action, ActionType, Plan
from dsdb_plan.state import ResourceRecord, StateSnapshot
from dsdb_plan.state.store import utc_now
from dsdb_plan.workspace import Workspace

_Planned = list[Action] | str
"""A resource's actions, or the line saying why it cannot be planned."""


def make_plan(
    loaded: LoadedManifest,
    workspace: Workspace,
    snapshot: StateSnapshot,
    *,
    targets: Collection[str] = (),
    excludes: Collection[str] = (),
    parallelism: int = 1,
) -> Plan:
    """The ordered actions that would bring reality to the manifest, planning up to
    `parallelism` resources at once; the plan does not depend on the order they finish in."""
    manifest = loaded.manifest
    resources = manifest.resources()
    _check_selection(set(resources) | set(snapshot.resources), targets, excludes)
    records, moves = _records_after_moves(manifest.moved, snapshot)
    graph = dependencies(manifest)
    chosen = {
        address
        for address in set(resources) | set(records)
        if (not targets or address in targets) and address not in excludes
    }
    # Only what is chosen, and what it depends on (to warn about cut edges), is read.
    wanted = chosen | {dependency for address in chosen for dependency in graph.get(address, ())}
    ctx = PlanContext(
        manifest=manifest,
        workspace=workspace,
        snapshot=snapshot,
        chosen=chosen,
        upstream=ancestors(graph),
    )
    order = [address for address in topological_order(graph) if address in wanted]
    planning = _run_after_dependencies(
        order,
        graph,
        lambda address: _plan_resource(
            ctx, address, resources[address], records.get(address), moves
        ),
        parallelism,
    )
    actions: list[Action] = []
    errors: list[str] = []
    for address in order:
        planned = planning[address].result()  # a bug in a kind raises here, in plan order
        if isinstance(planned, str):
            errors.append(planned)
        else:
            actions.extend(planned)
    for address in sorted((set(records) - set(resources)) & chosen):
        record = records[address]
        try:
            actions.extend(kind_of(record.kind).plan_removed(ctx, record))
        except DsdbError as error:
            errors.append(f"{address}: {error.message}")
    errors += _undone_by_teardowns(manifest.teardowns, actions)
    actions += _abandoned_checkpoints(snapshot, set(resources) | set(records), targets, excludes)
    if errors:
        raise PlanError("cannot plan:\n" + "\n".join(f"  {line}" for line in errors))
    actions = _link_dependencies(actions, graph)
    selected, warnings = _select(actions, targets, excludes)
    created = [
        f"database {connection.link} of connection '{name}' does not exist: apply creates it "
        "(create_database: true)"
        for name, connection in sorted(loaded.manifest.connections.items())
        if connection.create_database and not connection.is_sqlite_file and ctx.is_missing(name)
    ]
    return Plan(
        manifest_path=str(loaded.path),
        manifest_digest=loaded.digest,
        state_lineage=snapshot.lineage,
        state_serial=snapshot.serial,
        actions=tuple(selected),
        fingerprints=dict(sorted(ctx.fingerprints.items())),
        warnings=(*created, *warnings),
        created_at=utc_now(),
        moves=tuple(sorted((old, new) for new, old in moves.items())),
        checks=change_checks(loaded.manifest, ctx.fingerprints),
    )


def change_checks(manifest: Manifest, fingerprints: Mapping[str, Any]) -> tuple[str, ...]:
    """A line for each connection the plan read for changes by reading its rows."""
    read = sorted(
        {split_fingerprint_key(key)[0] for key, taken in fingerprints.items() if taken["tables"]}
    )
    lines = []
    for name in read:
        engine = engine_for(manifest.connections[name].dialect)
        if engine.change_check is not None:
            lines.append(f"{name} ({engine.name}): {engine.change_check}")
    return tuple(lines)


def _undone_by_teardowns(teardowns: Mapping[str, Teardown], actions: list[Action]) -> list[str]:
    """Teardowns that drop tables another action of the plan writes: each apply would undo
    the other, so the plan could never hold. (The manifest check catches what the manifest
    alone shows; this catches what only the databases and backups tell.)"""
    writes: list[tuple[str, str, set[str]]] = []
    for action in actions:
        payload = action.payload
        if isinstance(payload, RestoreBackup):
            writes.append((action.key, payload.connection, set(payload.writes)))
        elif isinstance(payload, CopyTables):
            writes.append((action.key, payload.target, {c.target for c in payload.tables}))
    problems = []
    # Whether or not the tables are there now: a teardown keeps them gone. (One of every
    # table is a manifest error already.)
    for name, teardown in sorted(teardowns.items()):
        if teardown.tables == "all":
            continue
        for writer, connection, tables in writes:
            both = (
                sorted(tables & set(teardown.tables)) if connection == teardown.connection else []
            )
            if both:
                problems.append(
                    f"teardown.{name}: drops {', '.join(both)} of '{connection}' that {writer} "
                    "writes: each apply would undo the other"
                )
    return problems


def _abandoned_checkpoints(
    snapshot: StateSnapshot, known: set[str], targets: Collection[str], excludes: Collection[str]
) -> list[Action]:
    """Checkpoints of unfinished applies of resources gone from the manifest and never
    recorded: apply drops them, so they cannot resume into a later resource of that name.
    A plan narrowed by --target leaves them be."""
    if targets:
        return []
    gone = sorted(set(snapshot.checkpoints) - known - set(excludes))
    return [
        Action(
            key=address,
            address=address,
            kind=address.split(".", 1)[0],
            type=ActionType.DESTROY,
            reasons=(
                "removed from the manifest before its first apply finished",
                "the unfinished apply's checkpoint is dropped; what it wrote stays",
            ),
            payload=Forget({}),
        )
        for address in gone
    ]


def _plan_resource(
    ctx: PlanContext,
    address: str,
    spec: Any,
    record: ResourceRecord | None,
    moves: dict[str, str],
) -> _Planned:
    try:
        planned = kind_of(address.split(".", 1)[0]).plan(ctx, address, spec, record)
    except DsdbError as error:
        # A resource's problems, a line each, each naming the resource.
        return "\n  ".join(
            line if line.startswith(address) else f"{address}: {line}"
            for line in error.message.splitlines()
        )
    except sa.exc.DBAPIError as error:
        return f"{address}: the database refused a read: {driver_message(error)}"
    planned = [_with_move_note(action, moves) for action in planned]
    # Set before the future completes, so the resources that depend on this one see it.
    ctx.planned[address] = planned[0]
    return planned


def _run_after_dependencies(
    order: list[str],
    graph: dict[str, set[str]],
    work: Callable[[str], _Planned],
    parallelism: int,
) -> dict[str, Future[_Planned]]:
    """`work(address)` for every address of `order`, up to `parallelism` at once, each started
    once the addresses it depends on (those in `order`) are done."""
    needs = {address: graph.get(address, set()) & set(order) for address in order}
    started: dict[str, Future[_Planned]] = {}
    done: set[str] = set()
    pool = ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="dsdb-plan")
    try:
        while len(done) < len(order):
            for address in order:
                if address not in started and needs[address] <= done:
                    started[address] = pool.submit(work, address)
            running = [future for address, future in started.items() if address not in done]
            wait(running, return_when=FIRST_COMPLETED)
            done |= {address for address, future in started.items() if future.done()}
    finally:
        # Interrupted (Ctrl-C): nothing more starts, and nobody waits for the reads running.
        pool.shutdown(wait=False, cancel_futures=True)
    return started


def _records_after_moves(
    moved: Collection[Moved], snapshot: StateSnapshot
) -> tuple[dict[str, ResourceRecord], dict[str, str]]:
    """Records keyed by their new address where a `moved:` entry renames them."""
    records = dict(snapshot.resources)
    moves: dict[str, str] = {}
    for move in moved:
        old, new = move.from_, move.to
        if old in records and new not in records:
            records[new] = records.pop(old)
            moves[new] = old
    return records, moves


def _with_move_note(action: Action, moves: dict[str, str]) -> Action:
    if action.address not in moves or action.key != action.address:
        return action
    old = moves[action.address]
    return replace(action, reasons=(f"moved from {old}", *action.reasons), moved_from=old)


def _link_dependencies(actions: list[Action], graph: dict[str, set[str]]) -> list[Action]:
    """Each action depends on the main actions of the resources its resource depends on."""
    keys = {action.key for action in actions}
    linked = []
    for action in actions:
        wanted = set(action.depends_on) | {a for a in graph.get(action.address, ()) if a in keys}
        linked.append(replace(action, depends_on=tuple(sorted(wanted))))
    return linked


def _check_selection(known: set[str], targets: Collection[str], excludes: Collection[str]) -> None:
    """Each address given that is neither declared nor recorded, with validate's did-you-mean
    (or, when nothing is close, the addresses there are)."""
    choices = sorted(known)
    problems = [
        f"--{option} {address}: unknown resource '{address}'"
        + (did_you_mean(address, choices) or f" (known: {', '.join(choices) or 'none'})")
        for option, given in (("target", targets), ("exclude", excludes))
        for address in sorted(set(given) - known)
    ]
    if problems:
        raise PlanError("\n".join(problems))


def _select(
    actions: list[Action], targets: Collection[str], excludes: Collection[str]
) -> tuple[list[Action], list[str]]:
    """Keep the targeted actions (all by default) minus the excluded; warn on cut edges."""
    if not targets and not excludes:
        return actions, []
    chosen = [
        action
        for action in actions
        if (not targets or action.address in targets) and action.address not in excludes
    ]
    chosen_keys = {action.key for action in chosen}
    by_key = {action.key: action for action in actions}
    warnings = [
        f"{action.key} depends on {dependency}, which is not selected "
        f"(it would {by_key[dependency].type.value})"
        for action in chosen
        for dependency in action.depends_on
        if dependency not in chosen_keys and by_key[dependency].is_change
    ]
    trimmed = [
        replace(action, depends_on=tuple(d for d in action.depends_on if d in chosen_keys))
        for action in chosen
    ]
    return trimmed, warnings


def drift_only(plan: Plan) -> Plan:
    """The plan's resyncs alone: data that moved since the last apply, manifest edits aside."""
    kept = {action.key for action in plan.actions if action.type is ActionType.RESYNC}
    # A resync stays after the resyncs it depends on: one may read what another writes.
    drift = tuple(
        replace(action, depends_on=tuple(key for key in action.depends_on if key in kept))
        for action in plan.actions
        if action.key in kept
    )
    note = (
        "refresh-only: shows data that changed since the last apply; manifest edits are not planned"
    )
    return replace(plan, actions=drift, moves=(), warnings=(*plan.warnings, note))
