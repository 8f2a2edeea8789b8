"""How long `dsdb plan` takes when nothing changed and after a one-row change (issue 15, aim 5).

For each size: a SQLite source of N parent rows (and N/5 children, `data.py`) is migrated
into a SQLite target once; then `dsdb plan` is timed with nothing changed (exit 0 expected)
and after one source row was updated (exit 2 expected: the plan must see the change). After
the change, each dsdb plans once untimed (its first plan hashes the pages it has not seen
before); then each plan is timed `--repeat` times, and the median kept, in wall time and in
CPU time (user plus system, steadier on a busy machine).

With `--against DSDB`, another dsdb's command (installed in its own environment, say from
`git archive main`) is timed beside this one on the same files. The two alternate round by
round, the order turned each round, each with its own page cache. Results go to
`plan_change.json` beside this file (or `--output`), and a line per size and dsdb is
printed, with the load average.

    python -m benchmarks.plan_change --rows 200000 2000000 --against /tmp/main/.venv/bin/dsdb
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
from pathlib import Path

from benchmarks import dsdb_runner
from benchmarks.data import write_sqlite
from benchmarks.measure import Measurement, measure

_DEFAULT_OUTPUT = Path(__file__).with_name("plan_change.json")
_THIS = "this"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 2_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another dsdb's command, to time beside")
    parser.add_argument("--output", type=Path, default=_DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    versions = {_THIS: Path(dsdb_runner.DSDB)} | ({"against": args.against} if args.against else {})
    results = [_measure(rows, args.repeat, versions) for rows in args.rows]
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    for result in results:
        for name, timed in result["dsdb"].items():
            print(
                f"{result['rows']:>10,} rows, {name:>7}: no change {timed['no_change_seconds']:.2f}"
                f" s ({timed['no_change_cpu_seconds']:.2f} s CPU), one row changed"
                f" {timed['one_row_changed_seconds']:.2f} s"
                f" ({timed['one_row_changed_cpu_seconds']:.2f} s CPU)"
            )
        print(f"{'':>10}  load average {result['load_average']}")
    return 0


def _measure(rows: int, repeat: int, versions: dict[str, Path]) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="dsdb-bench-plan-") as folder:
        workdir = Path(folder)
        write_sqlite(workdir / "source.db", rows)
        connections = {
            "source": {"driver": "sqlite", "database": "source.db"},
            "target": {"driver": "sqlite", "database": "target.db"},
        }
        migration = {"from": "source", "to": "target", "mode": "replace"}
        manifest = dsdb_runner.build_manifest(connections, {}, {}, {"copy": migration})
        (workdir / dsdb_runner.MANIFEST).write_text(manifest)
        apply = [dsdb_runner.DSDB, "apply", "--auto-approve", dsdb_runner.MANIFEST]
        applied = measure(apply, workdir, _env(workdir, _THIS))
        if not applied.ok:
            raise SystemExit(f"dsdb apply failed: {applied.last_line()}")
        unchanged = _rounds(workdir, versions, repeat, expected=0)
        conn = sqlite3.connect(workdir / "source.db")
        with conn:
            conn.execute("UPDATE parent SET name = name || '!' WHERE id = ?", (rows // 2,))
        conn.close()
        _rounds(workdir, versions, 1, expected=2)  # each hashes the changed pages once
        changed = _rounds(workdir, versions, repeat, expected=2)
    timed = {
        name: {
            "no_change_seconds": _median(unchanged[name], "seconds"),
            "no_change_cpu_seconds": _median(unchanged[name], "cpu_seconds"),
            "one_row_changed_seconds": _median(changed[name], "seconds"),
            "one_row_changed_cpu_seconds": _median(changed[name], "cpu_seconds"),
            "peak_rss_mb": round(
                max(run.peak_rss_mb for run in unchanged[name] + changed[name]), 1
            ),
        }
        for name in versions
    }
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return {"rows": rows, "load_average": load, "dsdb": timed}


def _rounds(
    workdir: Path, versions: dict[str, Path], repeat: int, *, expected: int
) -> dict[str, list[Measurement]]:
    """`repeat` plans by each dsdb, alternating, the order turned each round; each must exit
    with `expected` (0 no changes, 2 changes)."""
    runs: dict[str, list[Measurement]] = {name: [] for name in versions}
    names = list(versions)
    for round_ in range(repeat):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            command = [str(versions[name]), "plan", "--detailed-exitcode", dsdb_runner.MANIFEST]
            run = measure(command, workdir, _env(workdir, name))
            if run.returncode != expected:
                raise SystemExit(
                    f"dsdb ({name}) plan exited {run.returncode}, not {expected}: {run.output}"
                )
            runs[name].append(run)
    return runs


def _env(workdir: Path, name: str) -> dict[str, str]:
    """Each dsdb its own page cache."""
    return {"DSDB_CACHE_DIR": str(workdir / f"cache-{name}")}


def _median(runs: list[Measurement], field: str) -> float:
    return round(statistics.median(getattr(run, field) for run in runs), 3)


if __name__ == "__main__":
    raise SystemExit(main())
