"""SQLite → PostgreSQL, dsdb against the COPY script, alternated round by round.

`python -m benchmarks.sqlite_postgres_rounds --rows 1000000 --rounds 4 [--before REV ...]
[--source FILE]`

On one generated SQLite file (`--source` reuses one `data.write_sqlite` made), each contender
copies both tables into a freshly created PostgreSQL database as a whole process (wall time
and peak RSS by `measure.py`), in turn, the order rotated each round: the psycopg COPY
script (`baselines.sqlite_to_postgres`), dsdb as checked out, and with `--before REV ...` dsdb
at each of those git revisions (its `dsdb_plan` exported to a temporary folder and put first
on `PYTHONPATH`), all running `dsdb apply --auto-approve` of the same `migrations:` entry
(mode upsert, full verification). Prints every run, the medians, each one's ratio to the
baseline's median, and the load average before and after; the shared machine makes only
ratios within one run meaningful.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks import data, dsdb_runner
from benchmarks.measure import Measurement, measure
from benchmarks.servers import Scratch, postgres_url

REPO = Path(__file__).resolve().parents[1]


def _export(revision: str, folder: Path) -> Path:
    """`dsdb_plan` as committed at `revision`, unpacked under `folder`."""
    archive = subprocess.run(
        ["git", "archive", revision, "dsdb_plan"], cwd=REPO, capture_output=True, check=True
    ).stdout
    target = folder / f"dsdb-{revision}"
    target.mkdir()
    archive_path = folder / "export.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(target, filter="data")
    return target


def _dsdb(workdir: Path, source: str, database: str, pythonpath: str | None) -> Measurement:
    connections = {
        "source": {"driver": "sqlite", "database": source},
        "target": {"url": postgres_url(database)},
    }
    migration = {"from": "source", "to": "target", "mode": "upsert", "tables": list(data.TABLES)}
    for stale in workdir.glob("*"):
        if stale.is_file():
            stale.unlink()
    subprocess.run(["rm", "-rf", str(workdir / ".dsdb")], check=True)
    manifest = dsdb_runner.build_manifest(connections, {}, {}, {"m": migration})
    (workdir / dsdb_runner.MANIFEST).write_text(manifest)
    env = {"PYTHONPATH": pythonpath} if pythonpath else None
    command = [sys.executable, "-m", "dsdb_plan", "apply", "--auto-approve", dsdb_runner.MANIFEST]
    return measure(command, cwd=workdir, env=env)


def _baseline(source: str, database: str) -> Measurement:
    arguments = json.dumps({"source": source, "target": database})
    return measure(
        [sys.executable, "-m", "benchmarks.baselines", "sqlite_to_postgres", arguments], cwd=REPO
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--source", help="a SQLite file data.write_sqlite made (reused)")
    parser.add_argument(
        "--before", nargs="+", default=[], help="git revisions of dsdb to time beside this one"
    )
    parser.add_argument("--only-dsdb", action="store_true", help="leave the baseline out")
    args = parser.parse_args(argv)
    print("load average at start:", " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    with tempfile.TemporaryDirectory(prefix="dsdb-rounds-") as folder:
        tmp = Path(folder)
        source = args.source
        if source is None:
            source = str(tmp / "source.db")
            data.write_sqlite(Path(source), args.rows)
        scratch = Scratch()
        contenders: dict[str, Callable[[str], Measurement]] = {}
        if not args.only_dsdb:
            contenders["COPY script"] = lambda database: _baseline(source, database)
        (tmp / "after").mkdir()
        contenders["dsdb"] = lambda database: _dsdb(tmp / "after", source, database, None)
        for revision in args.before:
            exported = str(_export(revision, tmp))
            (tmp / revision).mkdir()
            contenders[f"dsdb {revision}"] = lambda database, r=revision, e=exported: _dsdb(
                tmp / r, source, database, e
            )
        names = list(contenders)
        runs: dict[str, list[Measurement]] = {name: [] for name in names}
        try:
            for round_ in range(args.rounds):
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    database = scratch.postgres("target")
                    measurement = contenders[name](database)
                    scratch.drop("target")
                    runs[name].append(measurement)
                    status = "" if measurement.ok else f" FAILED: {measurement.last_line()}"
                    print(
                        f"round {round_ + 1} {name}: {measurement.seconds:.2f} s, "
                        f"{measurement.peak_rss_mb:.0f} MB{status}",
                        flush=True,
                    )
        finally:
            scratch.drop_all()
    print("load average at end:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    medians = {name: statistics.median(m.seconds for m in runs[name]) for name in names}
    base = medians.get("COPY script")
    print("| contender | median s | runs s | ratio to the COPY script | peak RSS MB |")
    print("| --- | ---: | --- | ---: | ---: |")
    for name in names:
        seconds = ", ".join(f"{m.seconds:.2f}" for m in runs[name])
        ratio = f"{base / medians[name]:.2f}" if base else "—"
        rss = max(m.peak_rss_mb for m in runs[name])
        print(f"| {name} | {medians[name]:.2f} | {seconds} | {ratio} | {rss:.0f} |")
    return 0 if all(m.ok for ms in runs.values() for m in ms) else 1


if __name__ == "__main__":
    sys.exit(main())
