"""`python -m benchmarks.run [--rows N] [--only PATH ...] [--against REV ...]`: time dsdb
against the baselines, the peers and earlier revisions of itself, round by round."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from benchmarks import builds, dsdb_runner, report
from benchmarks.suite import PATHS, Suite, select

PEERS = ("pgloader", "sling", "dlt")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="parent rows (N)")
    parser.add_argument("--only", nargs="+", choices=PATHS, help="run only these paths")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds: runs per contender (the median is kept)"
    )
    parser.add_argument(
        "--against",
        nargs="+",
        default=[],
        metavar="REV",
        help="git revisions of dsdb to time beside this checkout (each installed in a "
        "temporary worktree and virtual environment)",
    )
    parser.add_argument(
        "--source", type=Path, help="a SQLite file benchmarks.data made for --rows, reused"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=report.HERE,
        help="the folder latest.md and results.json are written to (default benchmarks/)",
    )
    parser.add_argument(
        "--no-memory-check",
        action="store_true",
        help="skip the second, dsdb-only run at N/10 that shows memory is bounded",
    )
    parser.add_argument(
        "--no-profile", action="store_true", help="do not profile paths that miss their aim"
    )
    parser.add_argument(
        "--no-floors", action="store_true", help="do not time the floors under the paths"
    )
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help="time only dsdb and the baselines, not pgloader, Sling and dlt",
    )
    parser.add_argument(
        "--peers", nargs="+", choices=PEERS, help="time only these peers beside the baselines"
    )
    parser.add_argument(
        "--verify-counts",
        action="store_true",
        help="also time this checkout's dsdb with its migrations at `verify: counts`",
    )
    parser.add_argument(
        "--dsdb-only",
        action="store_true",
        help="time dsdb alone (no baselines, no peers): its time and peak memory",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    paths = select(args.only, baselines=not args.dsdb_only)
    peers: bool | set[str] = set(args.peers) if args.peers else not args.no_peers
    migrations = dsdb_runner.migrations_available()
    if not migrations[0]:
        log(f"migrations unavailable, not measured: {migrations[1]}")
    info = report.machine()
    with builds.installed(args.against, log) as earlier:
        suite = Suite(
            args.rows,
            paths,
            args.repeat,
            not args.dsdb_only,
            migrations,
            log,
            peers=peers,
            builds=earlier,
            source=args.source,
            floors=not args.no_floors,
            counts=args.verify_counts,
        )
        results = suite.run(profile=not args.no_profile)
    small_rows = small = None
    if not args.no_memory_check:
        small_rows = max(args.rows // 10, 1)
        log(f"memory check at {small_rows:,} rows")
        small = Suite(small_rows, paths, 1, False, migrations, log, floors=False).run()
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
        suite.load_averages(),
        shlex.join(["python", "-m", "benchmarks.run", *(sys.argv[1:] if argv is None else argv)]),
        args.output,
    )
    log(f"wrote {args.output / 'latest.md'} and {args.output / 'results.json'}")
    failed = [r.name for r in results.values() if r.problems]
    if failed:
        log("problems in: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
