"""dsdb's side: the manifest under test, the commands that are timed, and profiling them."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
from collections import Counter
from pathlib import Path

import yaml

from benchmarks.measure import Measurement, measure

REPO = str(Path(__file__).resolve().parents[1]) + "/"
DSDB = str(Path(sys.executable).with_name("dsdb"))
MANIFEST = "dsdb.yaml"
Hotspot = tuple[str, float]


def build_manifest(
    connections: dict[str, dict[str, str]],
    backups: dict[str, dict[str, object]],
    restores: dict[str, dict[str, object]],
    migrations: dict[str, dict[str, object]],
) -> str:
    document: dict[str, object] = {
        "version": 1,
        "settings": {"state": ".dsdb/state.db", "backup_root": "backups/"},
        "connections": connections,
    }
    for section, resources in (
        ("backups", backups),
        ("migrations", migrations),
        ("restores", restores),
    ):
        if resources:
            document[section] = resources
    return yaml.safe_dump(document, sort_keys=False)


def apply(
    workdir: Path, dsdb: list[str] | None = None, env: dict[str, str] | None = None
) -> Measurement:
    """`dsdb apply --auto-approve` by the `dsdb` command given, or this checkout's."""
    return measure([*(dsdb or [DSDB]), "apply", "--auto-approve", MANIFEST], workdir, env)


def plan(
    workdir: Path, dsdb: list[str] | None = None, env: dict[str, str] | None = None
) -> Measurement:
    """`dsdb plan --detailed-exitcode`: exit 0 means nothing to change, 2 changes."""
    return measure([*(dsdb or [DSDB]), "plan", "--detailed-exitcode", MANIFEST], workdir, env)


def migrations_available() -> tuple[bool, str]:
    """Whether this dsdb plans a `migrations:` resource, with the reason when it does not."""
    with tempfile.TemporaryDirectory(prefix="dsdb-bench-probe-") as folder:
        workdir = Path(folder)
        conn = sqlite3.connect(workdir / "a.db")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO t VALUES (1, 'x')")
        conn.commit()
        conn.close()
        connections = {
            "a": {"driver": "sqlite", "database": "a.db"},
            "b": {"driver": "sqlite", "database": "b.db"},
        }
        migration = {"from": "a", "to": "b", "mode": "upsert", "tables": ["t"]}
        (workdir / MANIFEST).write_text(build_manifest(connections, {}, {}, {"m": migration}))
        result = plan(workdir)
    if result.returncode in (0, 2):
        return True, ""
    return False, result.last_line()


def profile(workdir: Path, arguments: list[str], top: int = 8) -> dict[str, list[Hotspot]]:
    """Sample dsdb with py-spy: the `top` lines by own time and dsdb's functions by inclusive
    time, each with its share of the samples. Waits on a database count (they are where the
    time goes); a thread waiting for another thread does not (the other thread is sampled).

    py-spy rather than cProfile: dsdb runs actions in worker threads, which cProfile ignores.
    """
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise RuntimeError("profiling needs py-spy: pip install py-spy (or pass --no-profile)")
    with tempfile.NamedTemporaryFile(suffix=".txt") as output:
        command = [spy, "record", "--idle", "--format", "raw", "--rate", "100", "-o", output.name]
        run = subprocess.run(
            [*command, "--", DSDB, *arguments], cwd=workdir, capture_output=True, text=True
        )
        if run.returncode not in (0, 2):
            raise RuntimeError(f"profiled dsdb failed: {(run.stdout + run.stderr).strip()}")
        stacks = [line.rsplit(" ", 1) for line in Path(output.name).read_text().splitlines()]
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    depth: dict[str, int] = {}
    total = 0
    for stack, count in stacks:
        frames = [_where(frame) for frame in stack.split(";") if " (" in frame]
        if not frames or frames[-1].startswith(_WAITING):
            continue  # no Python code ran, or a thread waits for another (counted there)
        total += int(count)
        own[frames[-1]] += int(count)
        ours = [frame.rsplit(":", 1)[0] for frame in frames if "dsdb_plan/" in frame]
        for level, function in enumerate(ours):
            depth[function] = max(depth.get(function, 0), level)
        for function in set(ours):
            inclusive[function] += int(count)
    # A chain of calls that all hold the same samples is shown by its deepest function.
    deepest: dict[int, str] = {}
    for function, samples in inclusive.items():
        if function.endswith("<module>"):
            continue  # import time
        if samples not in deepest or depth[function] > depth[deepest[samples]]:
            deepest[samples] = function
    chains = sorted(deepest.items(), reverse=True)[:top]
    total = total or 1
    return {
        "own time (the line running)": [(k, n / total) for k, n in own.most_common(top)],
        "dsdb_plan functions, inclusive": [(k, n / total) for n, k in chains],
    }


_PREFIXES = sorted(
    {sysconfig.get_paths()["purelib"] + "/", sysconfig.get_paths()["stdlib"] + "/", REPO},
    key=len,
    reverse=True,
)


#: Where a thread waits for another thread's work, not for a database or a disk.
_WAITING = ("threading.py:", "concurrent/futures/", "queue.py:")


def _where(frame: str) -> str:
    """`function (path:line)` as `short/path.py:function:line`."""
    function, _, location = frame.rpartition(" (")
    file, _, line = location.rstrip(")").rpartition(":")
    for prefix in _PREFIXES:
        if file.startswith(prefix):
            file = file[len(prefix) :]
            break
    return f"{file}:{function}:{line}"
