"""A SQLite backup and its restore into PostgreSQL, by this dsdb and by the dsdb of an earlier
commit, beside their baselines, in one run. Run on demand, never in the test suite:

    python -m benchmarks.backup_against --before 4b64739 --rows 1000000 --repeat 3

Each round times, as whole processes and in an order rotated round by round: SQLite's backup
API, `dsdb apply` of a `backups:` entry by the earlier commit and by this checkout; then a
COPY of gzip'd CSV files into PostgreSQL (`baselines.restore_csv`) and `dsdb apply` of a
`restores:` entry loading this checkout's backup, by each dsdb. It prints every run (wall
and CPU seconds, the load average), then the medians and each dsdb's ratio to its baseline.
The earlier commit's `dsdb_plan` is taken with `git archive` and run past the editable
install; `--source` reuses a SQLite file made by `benchmarks.data.write_sqlite`.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import yaml

from benchmarks.baselines import backup_csv
from benchmarks.data import write_sqlite
from benchmarks.servers import postgres_url, scratch

REPO = Path(__file__).resolve().parents[1]
#: Runs `dsdb` of the checkout in argv[1] (its `dsdb_plan` first on the path, not this one's).
_EARLIER = r"""
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, sys.argv[1])
from dsdb_plan.console import run
sys.argv = ["dsdb", *sys.argv[2:]]
run()
"""
_API = r"""
import sqlite3, sys
with sqlite3.connect(sys.argv[1]) as source, sqlite3.connect(sys.argv[2]) as copy:
    source.backup(copy)
"""
_COPY = r"""
import sys
from benchmarks.baselines import restore_csv
restore_csv(sys.argv[1], sys.argv[2])
"""
CONTENDERS = ("baseline", "before", "after")


def _timed(command: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """Wall and CPU seconds (user and system) of a process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=_env())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _manifest(folder: Path, source: Path, restore: tuple[str, Path] | None = None) -> Path:
    """A fresh folder holding a manifest that backs up `source`, or restores a backup."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    connections: dict[str, object] = {"source": {"driver": "sqlite", "database": str(source)}}
    document: dict[str, object] = {
        "version": 1,
        "settings": {"state": ".dsdb/state.db", "backup_root": "backups/"},
        "connections": connections,
    }
    if restore is None:
        document["backups"] = {"source": {"connection": "source", "keep": 1}}
    else:
        database, backup = restore
        connections["target"] = {"url": postgres_url(database)}
        document["restores"] = {"source": {"path": str(backup), "to": "target"}}
    (folder / "dsdb.yaml").write_text(yaml.safe_dump(document))
    return folder


def _apply(contender: str, earlier: Path, folder: Path) -> tuple[float, float]:
    """`dsdb apply` of the manifest in `folder` by the dsdb of `contender`."""
    dsdb = [str(Path(sys.executable).with_name("dsdb"))]
    if contender == "before":
        dsdb = [sys.executable, "-c", _EARLIER, str(earlier)]
    return _timed([*dsdb, "apply", "--auto-approve", "dsdb.yaml"], folder)


def _print_run(path: str, name: str, round_: int, found: tuple[float, float]) -> None:
    wall, cpu = found
    load = os.getloadavg()[0]
    print(
        f"{path} {name} #{round_ + 1}: {wall:.2f} s, cpu {cpu:.2f} s, load {load:.1f}", flush=True
    )


def _report(path: str, runs: dict[str, list[tuple[float, float]]]) -> None:
    medians = {name: statistics.median(wall for wall, _ in found) for name, found in runs.items()}
    for name, found in runs.items():
        cpu = statistics.median(seconds for _, seconds in found)
        walls = ", ".join(f"{wall:.2f}" for wall, _ in found)
        ratio = "" if name == "baseline" else f", ratio {medians['baseline'] / medians[name]:.2f}"
        print(f"{path} {name}: median {medians[name]:.2f} s (cpu {cpu:.2f} s) of {walls}{ratio}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the earlier commit")
    parser.add_argument("--rows", type=int, default=1_000_000, help="parent rows (N)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (the median is kept)")
    parser.add_argument("--source", type=Path, help="a SQLite file of benchmarks.data to reuse")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work, scratch() as databases:
        root = Path(work)
        earlier = root / "earlier"
        archive = subprocess.run(
            ["git", "archive", args.before, "dsdb_plan"], cwd=REPO, capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(earlier, filter="data")
        source = args.source or root / "source.db"
        if args.source is None:
            write_sqlite(source, args.rows)
        backup_csv(str(source), str(root / "csv"), 3)
        # What the restores load: a backup by this checkout, and the plan's page cache warm.
        _apply("after", earlier, _manifest(root / "kept", source))
        backup = next((root / "kept" / "backups").glob("*/*/backup.json")).parent
        runs: dict[str, dict[str, list[tuple[float, float]]]] = {"backup": {}, "restore": {}}
        print(f"load average at the start: {os.getloadavg()}", flush=True)
        for round_ in range(args.repeat):
            shift = round_ % len(CONTENDERS)
            for name in CONTENDERS[shift:] + CONTENDERS[:shift]:
                if name == "baseline":
                    copy = root / "api.db"
                    copy.unlink(missing_ok=True)
                    found = _timed([sys.executable, "-c", _API, str(source), str(copy)])
                else:
                    found = _apply(name, earlier, _manifest(root / name, source))
                runs["backup"].setdefault(name, []).append(found)
                _print_run("backup", name, round_, found)
            for name in CONTENDERS[shift:] + CONTENDERS[:shift]:
                database = databases.postgres(f"{name}_{round_}")
                if name == "baseline":
                    found = _timed([sys.executable, "-c", _COPY, str(root / "csv"), database])
                else:
                    folder = _manifest(root / name, source, (database, backup))
                    found = _apply(name, earlier, folder)
                databases.drop(f"{name}_{round_}")
                runs["restore"].setdefault(name, []).append(found)
                _print_run("restore", name, round_, found)
        print(f"load average at the end: {os.getloadavg()}")
        for path, found_runs in runs.items():
            _report(path, found_runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
