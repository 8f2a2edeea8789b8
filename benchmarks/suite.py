"""One benchmark run at one size: set up the data, time every path, check what was copied."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import data, dsdb_runner
from benchmarks.measure import Measurement, measure
from benchmarks.servers import Scratch, count_rows, mariadb_url, postgres_conninfo, postgres_url

#: Paths in the order they run; `restore` reads what `backup` wrote.
PATHS = ("sqlite-sqlite", "sqlite-postgres", "postgres-mariadb", "backup", "restore", "plan")
MIGRATIONS = {"sqlite-sqlite", "sqlite-postgres", "postgres-mariadb"}
TITLES = {
    "sqlite-sqlite": "SQLite → SQLite (migration)",
    "sqlite-postgres": "SQLite → PostgreSQL (migration)",
    "postgres-mariadb": "PostgreSQL → MariaDB (migration)",
    "backup": "backup of the SQLite data",
    "restore": "restore of that backup into PostgreSQL",
    "plan": "plan with nothing changed",
}
ADDRESSES = {
    "sqlite-sqlite": "migration.sqlite-to-sqlite",
    "sqlite-postgres": "migration.sqlite-to-postgres",
    "postgres-mariadb": "migration.postgres-to-mariadb",
    "backup": "backup.source",
    "restore": "restore.source-into-postgres",
}


@dataclass
class PathResult:
    """Every measurement of one path; the report takes the best time of each side."""

    name: str
    rows: int
    dsdb: list[Measurement] = field(default_factory=list)
    baseline: list[Measurement] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: str | None = None
    hotspots: dict[str, list[dsdb_runner.Hotspot]] = field(default_factory=dict)

    @staticmethod
    def _best(measurements: list[Measurement]) -> Measurement | None:
        ok = [m for m in measurements if m.ok or m.returncode == 2]
        return min(ok, key=lambda m: m.seconds) if ok else None

    @property
    def best_dsdb(self) -> Measurement | None:
        return self._best(self.dsdb)

    @property
    def best_baseline(self) -> Measurement | None:
        return self._best(self.baseline)

    @property
    def ratio(self) -> float | None:
        """dsdb's throughput as a share of the baseline's: baseline time / dsdb time."""
        if self.best_dsdb is None or self.best_baseline is None:
            return None
        return self.best_baseline.seconds / self.best_dsdb.seconds

    @property
    def peak_rss_mb(self) -> float | None:
        """The highest peak over all of dsdb's runs of this path."""
        return max((m.peak_rss_mb for m in self.dsdb if m.ok), default=None)


@dataclass
class _Target:
    """Where one side of a path writes, how to empty it and how to count what it holds."""

    kind: str  # sqlite, postgresql, mariadb or folder
    reset: Callable[[], str]
    location: str = ""

    def fresh(self) -> str:
        self.location = self.reset()
        return self.location


def select(only: list[str] | None) -> list[str]:
    """The paths to run: `--only` names, plus what they need (restore needs a backup)."""
    if not only:
        return list(PATHS)
    chosen = set(only)
    if chosen == {"plan"}:
        chosen = set(PATHS)
    if "restore" in chosen:
        chosen.add("backup")
    return [name for name in PATHS if name in chosen]


class Suite:
    """Runs the chosen paths at `rows` parent rows, `repeat` times each."""

    def __init__(
        self,
        rows: int,
        paths: list[str],
        repeat: int,
        baselines: bool,
        migrations: tuple[bool, str],
        log: Callable[[str], None],
    ) -> None:
        self.rows = rows
        self.total_rows = rows + data.child_count(rows)
        self.paths = paths
        self.repeat = repeat
        self.with_baselines = baselines
        self.migrations_ok, self.migrations_reason = migrations
        self.log = log
        self.results = {name: PathResult(name, self.total_rows) for name in paths}
        self.setup_seconds = 0.0

    def run(self, profile_below: float | None = None) -> dict[str, PathResult]:
        with tempfile.TemporaryDirectory(prefix="dsdb-bench-") as folder:
            scratch = Scratch()
            try:
                self._run(Path(folder), scratch, profile_below)
            finally:
                scratch.drop_all()
        return self.results

    # -- setup --------------------------------------------------------------------------

    def _run(self, folder: Path, scratch: Scratch, profile_below: float | None) -> None:
        started = time.perf_counter()
        self.source = folder / "source.db"
        self.log(f"generating {self.rows:,} + {data.child_count(self.rows):,} rows")
        data.write_sqlite(self.source, self.rows)
        self.pg_source = ""
        if "postgres-mariadb" in self.paths:
            self.pg_source = scratch.postgres("pg_source")
            data.write_postgres(postgres_conninfo(self.pg_source), self.rows)
        self.setup_seconds = time.perf_counter() - started
        self.workdir = folder / "dsdb"
        self.baseline_folder = folder / "baseline"
        self.targets = self._targets(folder, scratch)
        self.workdir.mkdir()
        (self.workdir / dsdb_runner.MANIFEST).write_text(self._manifest(folder, scratch))
        for name in self.paths:
            if name in MIGRATIONS and not self.migrations_ok:
                self.results[name].skipped = "not measured: migrations unavailable"
        for attempt in range(1, self.repeat + 1):
            self._clear_dsdb_state()
            for name in self.paths:
                if name != "plan":
                    self._measure_path(name, attempt)
        if "plan" in self.paths:
            for attempt in range(1, self.repeat + 1):
                self._measure_plan(attempt)
        if profile_below is not None:
            self._profile_slow(profile_below)

    def _targets(self, folder: Path, scratch: Scratch) -> dict[tuple[str, str], _Target]:
        def sqlite_file(path: Path) -> Callable[[], str]:
            def reset() -> str:
                path.unlink(missing_ok=True)
                return str(path)

            return reset

        def baseline_backup() -> str:
            shutil.rmtree(self.baseline_folder, ignore_errors=True)
            return str(self.baseline_folder)

        return {
            ("sqlite-sqlite", "baseline"): _Target("sqlite", sqlite_file(folder / "base.db")),
            ("sqlite-sqlite", "dsdb"): _Target("sqlite", sqlite_file(folder / "dsdb_target.db")),
            ("sqlite-postgres", "baseline"): _Target(
                "postgresql", lambda: scratch.postgres("base_pg")
            ),
            ("sqlite-postgres", "dsdb"): _Target("postgresql", lambda: scratch.postgres("dsdb_pg")),
            ("postgres-mariadb", "baseline"): _Target(
                "mariadb", lambda: scratch.mariadb("base_maria")
            ),
            ("postgres-mariadb", "dsdb"): _Target("mariadb", lambda: scratch.mariadb("dsdb_maria")),
            ("backup", "baseline"): _Target("folder", baseline_backup),
            ("backup", "dsdb"): _Target("folder", lambda: str(self.workdir / "backups")),
            ("restore", "baseline"): _Target(
                "postgresql", lambda: scratch.postgres("base_restore")
            ),
            ("restore", "dsdb"): _Target("postgresql", lambda: scratch.postgres("dsdb_restore")),
        }

    def _manifest(self, folder: Path, scratch: Scratch) -> str:
        """Every selected dsdb path as one manifest; `--target` picks the one being timed."""
        connections: dict[str, dict[str, str]] = {
            "source": {"driver": "sqlite", "database": str(self.source)},
        }
        migrations: dict[str, dict[str, object]] = {}
        routes = {
            "sqlite-sqlite": ("source", "sqlite_target"),
            "sqlite-postgres": ("source", "postgres_target"),
            "postgres-mariadb": ("postgres_source", "mariadb_target"),
        }
        links = {
            "sqlite_target": {"driver": "sqlite", "database": str(folder / "dsdb_target.db")},
            "postgres_target": {"url": postgres_url(scratch.name("dsdb_pg"))},
            "postgres_source": {"url": postgres_url(self.pg_source)},
            "mariadb_target": {"url": mariadb_url(scratch.name("dsdb_maria"))},
            "postgres_restore": {"url": postgres_url(scratch.name("dsdb_restore"))},
        }
        for name, (source, target) in routes.items():
            if name in self.paths and self.migrations_ok:
                connections.update({source: links.get(source, connections["source"])})
                connections[target] = links[target]
                migrations[ADDRESSES[name].split(".", 1)[1]] = {
                    "from": source,
                    "to": target,
                    "mode": "upsert",
                    "tables": list(data.TABLES),
                }
        backups: dict[str, dict[str, object]] = {}
        restores: dict[str, dict[str, object]] = {}
        if "backup" in self.paths:
            backups["source"] = {"connection": "source", "keep": 1}
        if "restore" in self.paths:
            connections["postgres_restore"] = links["postgres_restore"]
            restores["source-into-postgres"] = {"backup": "source", "to": "postgres_restore"}
        return dsdb_runner.build_manifest(connections, backups, restores, migrations)

    def _clear_dsdb_state(self) -> None:
        shutil.rmtree(self.workdir / ".dsdb", ignore_errors=True)
        shutil.rmtree(self.workdir / "backups", ignore_errors=True)

    # -- measuring ----------------------------------------------------------------------

    def _measure_path(self, name: str, attempt: int) -> None:
        result = self.results[name]
        if self.with_baselines:
            target = self.targets[(name, "baseline")].fresh()
            measurement = measure(self._baseline_command(name, target))
            result.baseline.append(measurement)
            self._check(result, "baseline", measurement, (name, "baseline"))
            self.log(f"{name} baseline #{attempt}: {self._describe(measurement)}")
        if result.skipped:
            return  # the baseline is still measured, for when dsdb can do this path
        if self.targets[(name, "dsdb")].kind != "folder":
            self.targets[(name, "dsdb")].fresh()
        else:
            self.targets[(name, "dsdb")].location = str(self.workdir / "backups")
        measurement = dsdb_runner.apply(self.workdir, ADDRESSES[name])
        result.dsdb.append(measurement)
        self._check(result, "dsdb", measurement, (name, "dsdb"))
        self.log(f"{name} dsdb #{attempt}: {self._describe(measurement)}")

    def _measure_plan(self, attempt: int) -> None:
        measurement = dsdb_runner.plan(self.workdir)
        result = self.results["plan"]
        result.dsdb.append(measurement)
        if measurement.returncode == 2:
            result.problems.append("the plan after an apply still shows changes")
        elif not measurement.ok:
            result.problems.append(f"dsdb plan failed: {measurement.last_line()}")
        self.log(f"plan #{attempt}: {self._describe(measurement)}")

    def _profile_slow(self, threshold: float) -> None:
        """Profile each dsdb path below `threshold` of its baseline (or a plan over 2 s)."""
        slow = [
            name
            for name, result in self.results.items()
            if not result.skipped
            and (
                (result.ratio is not None and result.ratio < threshold)
                or (name == "plan" and result.best_dsdb and result.best_dsdb.seconds > 2.0)
            )
        ]
        for name in sorted(slow, key=lambda name: name != "plan"):  # plan before it changes
            if name == "plan":
                arguments = ["plan", dsdb_runner.MANIFEST]
            else:
                if self.targets[(name, "dsdb")].kind != "folder":
                    self.targets[(name, "dsdb")].fresh()
                dsdb_runner.forget(self.workdir, ADDRESSES[name])
                arguments = ["apply", "--auto-approve", "--target", ADDRESSES[name]]
                arguments.append(dsdb_runner.MANIFEST)
            self.log(f"profiling {name}")
            self.results[name].hotspots = dsdb_runner.profile(self.workdir, arguments)

    def _baseline_command(self, name: str, target: str) -> list[str]:
        if name == "sqlite-sqlite":
            call, args = "sqlite_to_sqlite", {"source": str(self.source), "target": target}
        elif name == "sqlite-postgres":
            call, args = "sqlite_to_postgres", {"source": str(self.source), "target": target}
        elif name == "postgres-mariadb":
            call, args = "postgres_to_mariadb", {"source": self.pg_source, "target": target}
        elif name == "backup":
            call, args = "backup_csv", {"source": str(self.source), "folder": target}
        else:
            call, args = "restore_csv", {"folder": str(self.baseline_folder), "target": target}
        return [sys.executable, "-m", "benchmarks.baselines", call, json.dumps(args)]

    def _check(
        self, result: PathResult, side: str, measurement: Measurement, key: tuple[str, str]
    ) -> None:
        """A measurement counts only if the target holds every row."""
        if not measurement.ok:
            result.problems.append(f"{side} failed: {measurement.last_line()}")
            return
        target = self.targets[key]
        if target.kind == "folder":
            return
        for table in data.TABLES:
            expected = self.rows if table == "parent" else data.child_count(self.rows)
            found = count_rows(target.kind, target.location, table)
            if found != expected:
                result.problems.append(f"{side}: {table} has {found:,} rows, not {expected:,}")

    def _describe(self, measurement: Measurement) -> str:
        if not measurement.ok:
            return f"FAILED ({measurement.last_line()})"
        return f"{measurement.seconds:.2f} s, {measurement.peak_rss_mb:.0f} MB"
