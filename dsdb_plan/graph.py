"""The dependency graph between resources: explicit `depends_on` plus implicit edges.

Implicit edges follow the data: a backup is taken before it is restored; a restore into a
connection happens before anything reads that connection; every read of a connection happens
before a teardown of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping

from dsdb_plan.engines import engine_for
from dsdb_plan.models import Backup, Manifest, Migration, Restore, Teardown
from dsdb_plan.plan import Action


def reads_and_writes(manifest: Manifest) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per address, the connections it reads and the connections it writes."""
    reads: dict[str, set[str]] = defaultdict(set)
    writes: dict[str, set[str]] = defaultdict(set)
    for address, spec in manifest.resources().items():
        if isinstance(spec, Backup):
            reads[address].add(spec.connection)
        elif isinstance(spec, Migration):
            reads[address].add(spec.source)
            writes[address].add(spec.target)
        elif isinstance(spec, Restore):
            writes[address].add(spec.to)
        elif isinstance(spec, Teardown):
            writes[address].add(spec.connection)
    return reads, writes


def dependencies(manifest: Manifest) -> dict[str, set[str]]:
    """For each address, the addresses that must be applied before it."""
    resources = manifest.resources()
    reads, _ = reads_and_writes(manifest)
    graph: dict[str, set[str]] = {
        address: set(spec.depends_on) for address, spec in resources.items()
    }
    restores_into: dict[str, set[str]] = defaultdict(set)
    teardowns_of: dict[str, set[str]] = defaultdict(set)
    for address, spec in resources.items():
        if isinstance(spec, Restore):
            restores_into[spec.to].add(address)
            if spec.backup is not None and f"backup.{spec.backup}" in resources:
                graph[address].add(f"backup.{spec.backup}")
        elif isinstance(spec, Teardown):
            teardowns_of[spec.connection].add(address)
    for address, connections in reads.items():
        for connection in connections:
            graph[address] |= restores_into[connection] - {address}
            for teardown in teardowns_of[connection]:
                graph[teardown].add(address)
    return graph


def ancestors(graph: Mapping[str, Collection[str]]) -> dict[str, frozenset[str]]:
    """For each address, every address it depends on, directly or through others."""
    found: dict[str, frozenset[str]] = {}
    for address in graph:
        seen: set[str] = set()
        todo = list(graph[address])
        while todo:
            dependency = todo.pop()
            if dependency not in seen:
                seen.add(dependency)
                todo.extend(graph.get(dependency, ()))
        found[address] = frozenset(seen - {address})
    return found


def io_conflict(manifest: Manifest) -> Callable[[Action, Action], bool]:
    """Whether two actions must not run at the same time: one writes a database the other
    reads or writes, or both use one database that allows a single writer (a SQLite file)."""
    reads, writes = reads_and_writes(manifest)
    single_writer = {
        name
        for name, c in manifest.connections.items()
        if engine_for(c.dialect).capabilities.single_writer
    }

    def touched(action: Action) -> set[str]:
        return reads.get(action.address, set()) | writes.get(action.address, set())

    def conflict(a: Action, b: Action) -> bool:
        if a.address == b.address:
            return True
        a_writes, b_writes = writes.get(a.address, set()), writes.get(b.address, set())
        shared = touched(a) & touched(b)
        return bool(a_writes & touched(b) or b_writes & touched(a) or shared & single_writer)

    return conflict
