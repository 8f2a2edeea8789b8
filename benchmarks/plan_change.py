"""How long `dsdb plan` takes when nothing changed and after a one-row change (issue 15, aim 5).

For each size: a SQLite source of N parent rows (and N/5 children, `data.py`) is migrated
into a SQLite target once; then `dsdb plan` is timed with nothing changed (exit 0 expected)
and after one source row was updated (exit 2 expected: the plan must see the change). Each
plan is timed `--repeat` times, best kept, in wall time and in CPU time (user plus system,
steadier on a busy machine). Results go to `plan_change.json` beside this file
(or `--output`), and a line per size is printed.

    python -m benchmarks.plan_change --rows 200000 2000000
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
from pathlib import Path

from benchmarks import dsdb_runner
from benchmarks.data import write_sqlite
from benchmarks.measure import Measurement

_DEFAULT_OUTPUT = Path(__file__).with_name("plan_change.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 2_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, default=_DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    results = [_measure(rows, args.repeat) for rows in args.rows]
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    for result in results:
        print(
            f"{result['rows']:>10,} rows: no change {result['no_change_seconds']:.2f} s"
            f" ({result['no_change_cpu_seconds']:.2f} s CPU), one row changed"
            f" {result['one_row_changed_seconds']:.2f} s"
            f" ({result['one_row_changed_cpu_seconds']:.2f} s CPU)"
        )
    return 0


def _measure(rows: int, repeat: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="dsdb-bench-plan-") as folder:
        workdir = Path(folder)
        os.environ["DSDB_CACHE_DIR"] = str(workdir / "cache")  # dsdb's runs inherit it
        write_sqlite(workdir / "source.db", rows)
        connections = {
            "source": {"driver": "sqlite", "database": "source.db"},
            "target": {"driver": "sqlite", "database": "target.db"},
        }
        migration = {"from": "source", "to": "target", "mode": "replace"}
        manifest = dsdb_runner.build_manifest(connections, {}, {}, {"copy": migration})
        (workdir / dsdb_runner.MANIFEST).write_text(manifest)
        applied = dsdb_runner.apply(workdir)
        if not applied.ok:
            raise SystemExit(f"dsdb apply failed: {applied.last_line()}")
        unchanged = _best(workdir, repeat, expected=0)
        conn = sqlite3.connect(workdir / "source.db")
        with conn:
            conn.execute("UPDATE parent SET name = name || '!' WHERE id = ?", (rows // 2,))
        conn.close()
        changed = _best(workdir, repeat, expected=2)
    return {
        "rows": rows,
        "no_change_seconds": round(unchanged.seconds, 3),
        "no_change_cpu_seconds": round(unchanged.cpu_seconds, 3),
        "one_row_changed_seconds": round(changed.seconds, 3),
        "one_row_changed_cpu_seconds": round(changed.cpu_seconds, 3),
        "peak_rss_mb": round(max(unchanged.peak_rss_mb, changed.peak_rss_mb), 1),
    }


def _best(workdir: Path, repeat: int, *, expected: int) -> Measurement:
    """The fastest of `repeat` plans; each must exit with `expected` (0 none, 2 changes)."""
    runs = []
    for _ in range(repeat):
        run = dsdb_runner.plan(workdir)
        if run.returncode != expected:
            raise SystemExit(f"dsdb plan exited {run.returncode}, not {expected}: {run.output}")
        runs.append(run)
    return min(runs, key=lambda run: run.seconds)


if __name__ == "__main__":
    raise SystemExit(main())
