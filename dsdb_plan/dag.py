"""The one DAG runner: a topological order, and a scheduler that runs a graph's nodes.

The planner orders resources, the executor runs actions and a migration copies tables with
these two functions. Nodes are names; `needs[node]` names the nodes that must come first.
"""

from __future__ import annotations

import graphlib
import queue
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from dsdb_plan.errors import DsdbError

_Result = TypeVar("_Result")

Release = Callable[[], None]
"""Called by a running node to let its dependents start before it has finished."""


class CycleError(DsdbError):
    """The graph cannot be ordered; `cycle` is the path, its first node repeated at the end."""

    def __init__(self, cycle: list[str]) -> None:
        super().__init__("dependency cycle: " + " -> ".join(cycle))
        self.cycle = cycle


def find_cycle(needs: Mapping[str, Collection[str]]) -> list[str] | None:
    """A dependency cycle as a path (first node repeated at the end), or None."""
    try:
        graphlib.TopologicalSorter(needs).prepare()
    except graphlib.CycleError as error:
        return list(reversed(error.args[1]))
    return None


def topological_order(
    needs: Mapping[str, Collection[str]], *, break_cycles: bool = False
) -> list[str]:
    """Every node after the nodes it needs; among nodes ready together, name order.

    A cycle raises `CycleError`, or with `break_cycles` releases its first node by name (the
    caller then deals with what points forward, as table creation adds those keys last).
    """
    nodes = set(needs).union(*needs.values())
    before = {node: set(needs.get(node, ())) for node in nodes}
    order: list[str] = []
    done: set[str] = set()
    while len(done) < len(nodes):
        remaining = sorted(nodes - done)
        ready = [node for node in remaining if before[node] <= done]
        if not ready:
            if not break_cycles:
                raise CycleError(find_cycle(needs) or remaining)
            ready = remaining[:1]
        order.extend(ready)
        done.update(ready)
    return order


def run_dag(
    order: Sequence[str],
    needs: Mapping[str, Sequence[str]],
    run: Callable[[str, Release], _Result],
    finished: Callable[[str, _Result], bool],
    *,
    workers: int,
    cancel: threading.Event,
    conflict: Callable[[str, str], bool] | None = None,
    fail_fast: bool = False,
    on_start: Callable[[str], None] | None = None,
    on_skip: Callable[[str, str], None] | None = None,
    on_unstarted: Callable[[str], object] | None = None,
) -> None:
    """Run every node of `order` on up to `workers` threads, each once the nodes it needs
    (those in `order`; others count as done) have succeeded or released it.

    Nodes are considered in `order`, so with one worker they run exactly in it. `run(node,
    release)` runs in a worker; `finished(node, result)` runs in this thread, records the
    result and says whether the node succeeded. A node `conflict`ing with a running one
    waits. The dependents of a node that failed (or was skipped) are skipped: `on_skip(node,
    blocker)`, the first failed node it needs. With `fail_fast` a failure starts nothing
    more. An exception raised by `run` is a failure, and the first one is raised once the
    running nodes have finished.

    Once `cancel` is set nothing more starts (`on_unstarted` for each node left) and this
    returns when the running nodes have stopped. An exception in this thread
    (KeyboardInterrupt) sets `cancel` and waits the same way before it goes on, unless
    `cancel` was set already: then it goes on at once, and the running nodes stop in the
    background.
    """
    in_order = set(order)
    succeeded: dict[str, bool] = {}
    released: set[str] = set()
    pending = list(order)
    running: dict[Future[_Result], str] = {}
    failure: BaseException | None = None
    # Workers post the name of a node they released, and the future of one that ended.
    signals: queue.SimpleQueue[str | Future[_Result]] = queue.SimpleQueue()
    limit = max(1, workers)

    def end(node: str, ok: bool) -> None:
        succeeded[node] = ok
        if ok:
            released.add(node)

    pool = ThreadPoolExecutor(max_workers=limit)
    try:
        while pending or running:
            stopped = fail_fast and failure is not None
            if cancel.is_set() or stopped:
                for node in pending if not stopped else ():
                    if on_unstarted:
                        on_unstarted(node)
                pending.clear()
            for node in list(pending):
                blocker = next((n for n in needs.get(node, ()) if succeeded.get(n) is False), None)
                if blocker is not None:
                    pending.remove(node)
                    end(node, False)
                    if on_skip:
                        on_skip(node, blocker)
                    continue
                waiting = any(n in in_order and n not in released for n in needs.get(node, ()))
                clash = conflict is not None and any(
                    conflict(node, other) for other in running.values()
                )
                if waiting or clash or len(running) >= limit:
                    continue
                pending.remove(node)
                if on_start:
                    on_start(node)
                future = pool.submit(run, node, _releaser(signals, node))
                future.add_done_callback(signals.put)
                running[future] = node
            if not running:
                if pending:  # every node left waits for another one left
                    raise CycleError(find_cycle({n: needs.get(n, ()) for n in pending}) or pending)
                continue
            signal = signals.get()
            while True:
                if isinstance(signal, str):
                    released.add(signal)
                elif signal in running:
                    node = running.pop(signal)
                    error = signal.exception()
                    if error is not None:
                        failure = failure or error
                        end(node, False)
                    else:
                        end(node, finished(node, signal.result()))
                try:
                    signal = signals.get_nowait()
                except queue.Empty:
                    break
    except BaseException:
        # A second stop (the first one set `cancel`) means now: do not wait for the pool.
        again = cancel.is_set()
        cancel.set()
        pool.shutdown(wait=not again, cancel_futures=True)
        raise
    pool.shutdown()
    if failure is not None:
        raise failure


def _releaser(signals: queue.SimpleQueue[str | Future[_Result]], node: str) -> Release:
    return lambda: signals.put(node)
