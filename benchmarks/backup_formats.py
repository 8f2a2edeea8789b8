"""The backup formats side by side: the same SQLite data backed up in Parquet (format version 3)
and in gzip'd JSON lines (version 2) beside SQLite's backup API, and each backup restored into
PostgreSQL beside a COPY of gzip'd CSV files. Run on demand, never in the test suite:

    python -m benchmarks.backup_formats --rows 1000000 --repeat 3

Each operation runs in a process of its own, timed around the call alone (start-up left out),
the operations interleaved round by round so that a loaded machine slows them alike; it
prints each run and then the median of each, with the peak RSS and the size of each backup.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.baselines import backup_csv
from benchmarks.data import write_sqlite
from benchmarks.servers import scratch

OPERATIONS = (
    "api",
    "backup-parquet",
    "backup-jsonl",
    "restore-copy",
    "restore-parquet",
    "restore-jsonl",
)
#: One operation, run in a child process: `op source folder [PostgreSQL database]`.
_CHILD = r"""
import json, resource, sqlite3, sys, time
from pathlib import Path
op, source, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])
target = sys.argv[4] if len(sys.argv) > 4 else None
import sqlalchemy as sa
from dsdb_plan.archive import new_backup_id, restore_backup, write_backup
from benchmarks.baselines import restore_csv
from benchmarks.servers import postgres_url
import datetime as dt
start = time.perf_counter()
if op == "api":
    folder.mkdir()
    with sqlite3.connect(source) as conn, sqlite3.connect(folder / "copy.db") as copy:
        conn.backup(copy)
elif op.startswith("backup-"):
    engine = sa.create_engine(f"sqlite:///{source}")
    write_backup(engine, folder, new_backup_id(dt.datetime.now(dt.UTC)), data_format=op[7:])
elif op == "restore-copy":
    restore_csv(str(folder), target)
else:
    restore_backup(next(folder.iterdir()), sa.create_engine(postgres_url(target)))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "mb": peak}))
"""


def _run(op: str, source: Path, folder: Path, target: str | None = None) -> dict[str, Any]:
    command = [sys.executable, "-c", _CHILD, op, str(source), str(folder)]
    done = subprocess.run([*command, *([target] if target else [])], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{op} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="parent rows (N)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (the median is kept)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work, scratch() as databases:
        root = Path(work)
        source = root / "source.db"
        write_sqlite(source, args.rows)
        kept = {fmt: root / f"kept-{fmt}" for fmt in ("parquet", "jsonl")}
        for fmt, folder in kept.items():  # what the restores read, written once
            _run(f"backup-{fmt}", source, folder)
            print(f"backup in {fmt}: {_size(folder) / 1e6:.1f} MB", flush=True)
        backup_csv(str(source), str(root / "csv"), 3)
        runs: dict[str, list[dict[str, Any]]] = {op: [] for op in OPERATIONS}
        for round_ in range(1, args.repeat + 1):
            for op in OPERATIONS:
                folder = root / f"{op}-{round_}"
                target = None
                if op.startswith("restore-"):
                    target = databases.postgres("restore")
                    folder = root / "csv" if op == "restore-copy" else kept[op[8:]]
                result = _run(op, source, folder, target)
                runs[op].append(result)
                print(
                    f"{op} #{round_}: {result['seconds']:.2f} s, {result['mb']:.0f} MB", flush=True
                )
        for op, results in runs.items():
            seconds = [result["seconds"] for result in results]
            print(
                f"{op}: median {statistics.median(seconds):.2f} s of "
                f"{', '.join(f'{s:.2f}' for s in seconds)}; "
                f"peak {max(result['mb'] for result in results):.0f} MB"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
