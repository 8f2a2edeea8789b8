"""The DAG runner: order, cycles by name, skipping dependents of failures, parallel limit,
stopping. No server: the nodes are plain functions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

import pytest

from dsdb_plan.dag import CycleError, Release, find_cycle, run_dag, topological_order


@pytest.mark.parametrize(
    ("needs", "order"),
    [
        ({}, []),
        ({"a": set()}, ["a"]),
        ({"b": {"a"}, "a": set()}, ["a", "b"]),
        # Ties in name order; a node only named as a need is still ordered.
        ({"c": {"a"}, "b": {"a"}}, ["a", "b", "c"]),
        # Layer by layer: d waits for b although its own need, a, is done first.
        ({"d": {"b"}, "b": {"a"}, "c": {"a"}, "e": set()}, ["a", "e", "b", "c", "d"]),
    ],
)
def test_topological_order(needs: dict[str, set[str]], order: list[str]) -> None:
    assert topological_order(needs) == order


@pytest.mark.parametrize(
    ("needs", "cycle"),
    [
        ({"a": {"a"}}, ["a", "a"]),
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
        # Each node needs the next: a needs c, c needs b, b needs a.
        ({"x": set(), "a": {"c"}, "b": {"a"}, "c": {"b"}, "d": {"c"}}, ["a", "c", "b", "a"]),
    ],
)
def test_a_cycle_is_reported_by_name(needs: dict[str, set[str]], cycle: list[str]) -> None:
    found = find_cycle(needs)
    assert found is not None and found[0] == found[-1]
    # The same cycle in the same direction, whichever node it starts at.
    start = found.index(cycle[0])
    assert found[start:-1] + found[:start] == cycle[:-1]
    with pytest.raises(CycleError) as raised:
        topological_order(needs)
    assert raised.value.cycle == found
    assert str(raised.value) == "dependency cycle: " + " -> ".join(found)


def test_no_cycle_is_none() -> None:
    assert find_cycle({"b": {"a"}}) is None


@pytest.mark.parametrize(
    ("needs", "order"),
    [
        # The first node of the cycle by name goes first; the rest follows from it.
        ({"a": {"b"}, "b": {"a"}, "c": {"b"}}, ["a", "b", "c"]),
        ({"z": set(), "b": {"c"}, "c": {"b"}}, ["z", "b", "c"]),
    ],
)
def test_a_cycle_can_be_broken_by_name(needs: dict[str, set[str]], order: list[str]) -> None:
    assert topological_order(needs, break_cycles=True) == order


class _Recorder:
    """Runs nodes that sleep a little and fail when listed; records what happened."""

    def __init__(
        self, failing: Sequence[str] = (), raising: Sequence[str] = (), crowd: int = 1
    ) -> None:
        self.failing, self.raising = set(failing), set(raising)
        self.crowd = crowd  # each node waits (a while) for this many to run together
        self.started: list[str] = []
        self.finished: dict[str, bool] = {}
        self.skipped: dict[str, str] = {}
        self.unstarted: list[str] = []
        self.running = 0
        self.most = 0
        self._lock = threading.Condition()

    def run(self, node: str, _: Release) -> bool:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self._lock.notify_all()
            self._lock.wait_for(lambda: self.running >= self.crowd, timeout=0.5)
        time.sleep(0.01)
        with self._lock:
            self.running -= 1
        if node in self.raising:
            raise RuntimeError(f"{node} broke")
        return node not in self.failing

    def finish(self, node: str, ok: bool) -> bool:
        self.finished[node] = ok
        return ok

    def __call__(
        self,
        order: Sequence[str],
        needs: Mapping[str, Sequence[str]],
        *,
        workers: int = 1,
        cancel: threading.Event | None = None,
        conflict: Callable[[str, str], bool] | None = None,
        fail_fast: bool = False,
    ) -> None:
        run_dag(
            order,
            needs,
            self.run,
            self.finish,
            workers=workers,
            cancel=cancel or threading.Event(),
            conflict=conflict,
            fail_fast=fail_fast,
            on_start=self.started.append,
            on_skip=self.skipped.__setitem__,
            on_unstarted=self.unstarted.append,
        )


def test_one_worker_runs_in_the_given_order() -> None:
    runner = _Recorder()
    runner(["c", "a", "b"], {"b": ["a"]})
    assert runner.started == ["c", "a", "b"]
    assert runner.finished == {"c": True, "a": True, "b": True}


def test_a_failure_skips_its_dependents_and_theirs_but_not_the_rest() -> None:
    runner = _Recorder(failing=["a"])
    runner(["a", "b", "c", "d"], {"b": ["a"], "c": ["b"], "d": []})
    assert runner.finished == {"a": False, "d": True}
    # Each skip names the first need that did not succeed: a failure, or a skip.
    assert runner.skipped == {"b": "a", "c": "b"}


def test_needs_outside_the_graph_count_as_done() -> None:
    runner = _Recorder()
    runner(["b"], {"b": ["a"]})
    assert runner.finished == {"b": True}


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_at_most_workers_nodes_run_at_once(workers: int) -> None:
    # Each node waits for `workers` to run with it: more would show in `most`.
    runner = _Recorder(crowd=workers)
    runner([f"n{i}" for i in range(6)], {}, workers=workers)
    assert runner.most == workers
    assert len(runner.finished) == 6


def test_conflicting_nodes_never_run_together() -> None:
    runner = _Recorder()
    runner(["a", "b", "c"], {}, workers=3, conflict=lambda x, y: True)
    assert runner.most == 1 and len(runner.finished) == 3


def test_a_node_can_release_its_dependents_before_it_ends() -> None:
    seen: list[str] = []
    loaded = threading.Event()

    def run(node: str, release: Release) -> None:
        if node == "parent":
            release()
            # The child starts while the parent still runs (its verification, say).
            assert loaded.wait(5)
        else:
            loaded.set()
        seen.append(node)

    run_dag(
        ["parent", "child"],
        {"child": ["parent"]},
        run,
        lambda node, _: True,
        workers=2,
        cancel=threading.Event(),
    )
    assert seen == ["child", "parent"]


def test_fail_fast_starts_nothing_more_and_raises_the_first_error() -> None:
    runner = _Recorder(raising=["a"])
    with pytest.raises(RuntimeError, match="a broke"):
        runner(["a", "b", "c"], {}, fail_fast=True)
    assert runner.started == ["a"] and runner.unstarted == []


def test_a_cancel_starts_nothing_more() -> None:
    cancel = threading.Event()
    runner = _Recorder()
    original = runner.finish

    def finish_then_cancel(node: str, ok: bool) -> bool:
        cancel.set()
        return original(node, ok)

    runner.finish = finish_then_cancel  # type: ignore[method-assign]
    runner(["a", "b", "c"], {}, cancel=cancel)
    assert runner.started == ["a"] and runner.unstarted == ["b", "c"]


def test_an_exception_in_the_scheduling_thread_cancels_and_waits() -> None:
    cancel = threading.Event()
    stopped = threading.Event()

    b_runs = threading.Event()

    def run(node: str, _: Release) -> None:
        if node == "a":
            assert b_runs.wait(5)
        else:
            b_runs.set()
            assert cancel.wait(5)
            stopped.set()

    def finish(node: str, _: None) -> bool:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_dag(["a", "b"], {}, run, finish, workers=2, cancel=cancel)
    # `a` ended, raising in this thread; `b`, running, saw the cancel and was waited for.
    assert cancel.is_set() and stopped.is_set()


def test_nodes_waiting_on_each_other_are_a_cycle() -> None:
    with pytest.raises(CycleError, match="dependency cycle: "):
        _Recorder()(["a", "b"], {"a": ["b"], "b": ["a"]})
