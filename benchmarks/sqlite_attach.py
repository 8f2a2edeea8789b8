"""`python -m benchmarks.sqlite_attach`: SQLite → SQLite, dsdb against ATTACH, alternated.

On one generated source (`data.py`, N parents + N/5 children; kept in `--folder` and reused
when it has the same N), each contender copies both tables into a new target file as a
whole process (`measure.py`), round by round with the order rotated: the ATTACH baseline
(`baselines.sqlite_to_sqlite`) and `dsdb apply --auto-approve` of a `mode: upsert`
migration, once per `--dsdb` tree given (`name=path`, a checkout of dsdb to import instead
of the installed one: before and after in the same run). It prints every run, the medians,
what dsdb's apply says verifying took, and the ratio of the baseline's median to dsdb's:
whole processes, without verifying, and the migration's action alone without verifying
(the copy: what remains of dsdb's own time once start-up and planning are left out).
dsdb's page cache (`DSDB_CACHE_DIR`) lives in the folder, warm after the first round as it
would be for a user planning twice.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
from pathlib import Path

from benchmarks import data
from benchmarks.dsdb_runner import MANIFEST, build_manifest
from benchmarks.measure import Measurement, measure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sqlite_attach", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="parent rows (N)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds")
    parser.add_argument("--folder", type=Path, default=Path("benchmarks/work/sqlite-attach"))
    parser.add_argument(
        "--dsdb", action="append", default=[], metavar="NAME=PATH", help="a dsdb tree to time"
    )
    parser.add_argument("--batch-size", type=int, help="the migration's batch_size")
    args = parser.parse_args(argv)
    folder = args.folder.resolve()
    source = _source(folder, args.rows)
    trees = [tuple(item.split("=", 1)) for item in args.dsdb] or [("dsdb", "")]
    contenders = ["attach", *(name for name, _ in trees)]
    runs: dict[str, list[Measurement]] = {name: [] for name in contenders}
    print(f"load average at the start: {_load()}", flush=True)
    for round_ in range(args.repeat):
        shift = round_ % len(contenders)
        for name in contenders[shift:] + contenders[:shift]:
            work = folder / f"run-{name}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            if name == "attach":
                call = json.dumps({"source": str(source), "target": str(work / "target.db")})
                result = measure(
                    [sys.executable, "-m", "benchmarks.baselines", "sqlite_to_sqlite", call]
                )
            else:
                tree = dict(trees)[name]
                _manifest(work, source, args.batch_size)
                env = {"DSDB_CACHE_DIR": str(folder / "cache")}
                if tree:
                    env["PYTHONPATH"] = tree
                command = [sys.executable, "-m", "dsdb_plan", "apply", "--auto-approve", MANIFEST]
                result = measure(command, cwd=work, env=env)
            if not result.ok:
                print(result.output)
                return 1
            runs[name].append(result)
            verifying = result.verifying_seconds
            extra = ""
            if verifying is not None:
                extra = f", verifying {verifying:.2f} s, action {_action_seconds(result):.2f} s"
            print(f"round {round_ + 1} {name}: {result.seconds:.2f} s{extra}", flush=True)
    print(f"load average at the end: {_load()}")
    baseline = statistics.median(m.seconds for m in runs["attach"])
    print(f"\nN = {args.rows:,} + {data.child_count(args.rows):,} rows")
    for name in contenders:
        seconds = statistics.median(m.seconds for m in runs[name])
        each = ", ".join(f"{m.seconds:.2f}" for m in runs[name])
        line = f"{name}: median {seconds:.2f} s ({each})"
        line += f", peak RSS {max(m.peak_rss_mb for m in runs[name]):.0f} MB"
        line += f", CPU {statistics.median(m.cpu_seconds for m in runs[name]):.2f} s"
        if name != "attach":
            verifying = statistics.median(m.verifying_seconds or 0.0 for m in runs[name])
            rest = statistics.median(m.seconds - (m.verifying_seconds or 0.0) for m in runs[name])
            copying = statistics.median(
                _action_seconds(m) - (m.verifying_seconds or 0.0) for m in runs[name]
            )
            line += (
                f", verifying {verifying:.2f} s; ratio {baseline / seconds:.2f}, "
                f"without verifying {rest:.2f} s, ratio {baseline / rest:.2f}; "
                f"its action without verifying {copying:.2f} s, ratio {baseline / copying:.2f}"
            )
        print(line)
    return 0


def _action_seconds(measurement: Measurement) -> float:
    """How long the migration's action took, as its apply says (`done (…) in 9.9s`)."""
    found = re.search(r": done \([^)]*\) in ([0-9.]+)s", measurement.output)
    return float(found.group(1)) if found else measurement.seconds


def _source(folder: Path, rows: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    source, stamp = folder / "source.db", folder / "source.rows"
    if not (source.exists() and stamp.exists() and stamp.read_text() == str(rows)):
        source.unlink(missing_ok=True)
        data.write_sqlite(source, rows)
        stamp.write_text(str(rows))
    return source


def _manifest(work: Path, source: Path, batch_size: int | None) -> None:
    connections = {
        "source": {"driver": "sqlite", "database": str(source)},
        "target": {"driver": "sqlite", "database": "target.db"},
    }
    migration: dict[str, object] = {
        "from": "source",
        "to": "target",
        "mode": "upsert",
        "tables": list(data.TABLES),
    }
    if batch_size is not None:
        migration["batch_size"] = batch_size
    (work / MANIFEST).write_text(build_manifest(connections, {}, {}, {"copy": migration}))


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
