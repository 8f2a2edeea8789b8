"""PostgreSQL → MariaDB alone: dsdb against the LOAD DATA script, alternated round by round.

```bash
python -m benchmarks.pg_mariadb --rows 1000000 --repeat 5 [--keep-source NAME] [--before DIR ...]
```

Each round times, in a rotated order, the baseline (`COPY TO` a file, then `LOAD DATA LOCAL
INFILE`, `baselines.postgres_to_mariadb_load_data`), dsdb from this checkout and, with
`--before DIR ...` (copies of other commits' trees, e.g. `git archive`), dsdb from each tree
(named by its folder),
each into an empty MariaDB database; it prints every run, the medians, the ratios of medians
(baseline s / dsdb s) and the load average. `--keep-source NAME` keeps the generated
PostgreSQL source under that name and reuses it next time (generating 1,200,000 rows takes
minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import psycopg

from benchmarks import data, dsdb_runner
from benchmarks.measure import Measurement, measure
from benchmarks.report import load_average
from benchmarks.servers import (
    Scratch,
    count_rows,
    mariadb_url,
    postgres_conninfo,
    postgres_url,
)


def _source(scratch: Scratch, rows: int, keep: str | None) -> str:
    """The PostgreSQL source database's name: `keep` if it holds `rows` parents already."""
    if keep is None:
        name = scratch.postgres("pg_source")
        data.write_postgres(postgres_conninfo(name), rows)
        return name
    try:
        if count_rows("postgresql", keep, "parent") == rows:
            return keep
    except psycopg.Error:
        pass
    with psycopg.connect(postgres_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {keep} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {keep}")
    data.write_postgres(postgres_conninfo(keep), rows)
    return keep


def _dsdb(folder: Path, source: str, target: str, tree: str | None) -> Measurement:
    """`dsdb apply` of the benchmark's migration (upsert, full verification) from `tree`'s
    dsdb_plan, or this checkout's."""
    workdir = Path(tempfile.mkdtemp(dir=folder))
    connections = {"postgres_source": {"url": postgres_url(source)}, "t": {"url": target}}
    migration = {"from": "postgres_source", "to": "t", "mode": "upsert"}
    migration["tables"] = list(data.TABLES)
    manifest = dsdb_runner.build_manifest(connections, {}, {}, {"m": migration})
    (workdir / dsdb_runner.MANIFEST).write_text(manifest)
    env = {"PYTHONPATH": tree} if tree else None
    command = [sys.executable, "-m", "dsdb_plan", "apply", "--auto-approve", dsdb_runner.MANIFEST]
    return measure(command, cwd=workdir, env=env)


def _baseline(folder: Path, source: str, target: str) -> Measurement:
    arguments = json.dumps({"source": source, "target": target, "folder": str(folder)})
    command = [sys.executable, "-m", "benchmarks.baselines", "postgres_to_mariadb_load_data"]
    return measure([*command, arguments], env={"PYTHONPATH": dsdb_runner.REPO})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pg_mariadb", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="parent rows (N)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds")
    parser.add_argument("--keep-source", help="keep (and reuse) the source under this name")
    parser.add_argument(
        "--before", nargs="+", default=[], help="source trees of dsdb to time beside this one"
    )
    args = parser.parse_args(argv)
    trees = {Path(tree).name: tree for tree in args.before}
    contenders = ["baseline", "dsdb", *trees]
    times: dict[str, list[float]] = {name: [] for name in contenders}
    print(f"load average at start: {load_average()}", flush=True)
    scratch = Scratch()
    try:
        with tempfile.TemporaryDirectory(prefix="dsdb-bench-") as folder:
            source = _source(scratch, args.rows, args.keep_source)
            expected = args.rows + data.child_count(args.rows)
            for round_ in range(args.repeat):
                shift = round_ % len(contenders)
                for name in contenders[shift:] + contenders[:shift]:
                    role = f"target_{contenders.index(name)}"
                    target = scratch.mariadb(role)
                    if name == "baseline":
                        result = _baseline(Path(folder), source, target)
                    else:
                        result = _dsdb(Path(folder), source, mariadb_url(target), trees.get(name))
                    landed = sum(count_rows("mariadb", target, t) for t in data.TABLES)
                    scratch.drop(role)
                    if result.returncode != 0 or landed != expected:
                        print(result.output, file=sys.stderr)
                        raise SystemExit(f"{name} failed: exit {result.returncode}, {landed} rows")
                    times[name].append(result.seconds)
                    verifying = result.verifying_seconds
                    note = f" (verifying {verifying:.2f} s)" if verifying is not None else ""
                    print(
                        f"round {round_ + 1} {name}: {result.seconds:.2f} s{note}, "
                        f"load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
    finally:
        scratch.drop_all()
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        runs = ", ".join(f"{value:.2f}" for value in values)
        ratio = medians["baseline"] / medians[name]
        print(f"{name}: {runs}; median {medians[name]:.2f} s, ratio of medians {ratio:.2f}")
    print(f"load average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
