"""`python -m benchmarks.run [--rows N] [--only PATH ...]`: time dsdb against the baselines."""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks import dsdb_runner, report
from benchmarks.suite import PATHS, Suite, select


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="parent rows (N)")
    parser.add_argument("--only", nargs="+", choices=PATHS, help="run only these paths")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept)")
    parser.add_argument(
        "--no-memory-check",
        action="store_true",
        help="skip the second, dsdb-only run at N/10 that shows memory is bounded",
    )
    parser.add_argument(
        "--no-profile", action="store_true", help="do not profile paths that miss their aim"
    )
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help="time only dsdb and the baselines, not pgloader, Sling and dlt",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    paths = select(args.only)
    migrations = dsdb_runner.migrations_available()
    if not migrations[0]:
        log(f"migrations unavailable, not measured: {migrations[1]}")
    info = report.machine()
    suite = Suite(args.rows, paths, args.repeat, True, migrations, log, peers=not args.no_peers)
    results = suite.run(profile=not args.no_profile)
    small_rows = small = None
    if not args.no_memory_check:
        small_rows = max(args.rows // 10, 1)
        log(f"memory check at {small_rows:,} rows")
        small = Suite(small_rows, paths, 1, False, migrations, log).run()
    info["dsdb_commit_at_end"] = report.dsdb_version()
    info["load_average_at_end"] = report.load_average()
    report.write(
        info,
        args.rows,
        args.repeat,
        results,
        small_rows,
        small,
        suite.setup_seconds,
        suite.apply_all,
        suite.ceilings,
    )
    log("wrote benchmarks/results.md and benchmarks/results.json")
    failed = [r.name for r in results.values() if r.problems]
    if failed:
        log("problems in: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
