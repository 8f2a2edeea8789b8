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

from benchmarks import data, dsdb_runner, floors
from benchmarks.measure import Measurement, measure
from benchmarks.servers import Scratch, count_rows, mariadb_url, postgres_conninfo, postgres_url
from dsdb_plan.archive.format import COMPRESS_LEVEL

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
    """Runs the chosen paths at `rows` parent rows, `repeat` times each.

    Each dsdb path has its own folder and manifest holding only its resource, so its time is
    its own work (dsdb plans every resource of a manifest, even with `--target`). The
    no-change plan runs on a manifest of all of them, applied once beforehand.
    """

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
        self.migrations_ok = migrations[0]
        self.log = log
        self.results = {name: PathResult(name, self.total_rows) for name in paths}
        self.setup_seconds = 0.0
        self.apply_all: Measurement | None = None
        self.ceilings: list[floors.Ceiling] = []

    def run(self, profile_below: float | None = None) -> dict[str, PathResult]:
        with tempfile.TemporaryDirectory(prefix="dsdb-bench-") as folder:
            self.folder = Path(folder)
            self.scratch = Scratch()
            try:
                self._run(profile_below)
            finally:
                self.scratch.drop_all()
        return self.results

    def _run(self, profile_below: float | None) -> None:
        started = time.perf_counter()
        self.source = self.folder / "source.db"
        self.log(f"generating {self.rows:,} + {data.child_count(self.rows):,} rows")
        data.write_sqlite(self.source, self.rows)
        self.pg_source = ""
        if "postgres-mariadb" in self.paths:
            self.pg_source = self.scratch.postgres("pg_source")
            data.write_postgres(postgres_conninfo(self.pg_source), self.rows)
        self.setup_seconds = time.perf_counter() - started
        for name in self.paths:
            if name in MIGRATIONS and not self.migrations_ok:
                self.results[name].skipped = "not measured: migrations unavailable"
        copies = [name for name in self.paths if name != "plan"]
        for attempt in range(1, self.repeat + 1):
            for name in copies:
                self._measure_path(name, attempt)
        if "plan" in self.paths:
            self._measure_plan()
        self._measure_ceilings()
        if profile_below is not None:
            self._profile_slow(profile_below)

    # -- where each side writes ---------------------------------------------------------

    def _workdir(self, name: str) -> Path:
        return self.folder / f"dsdb-{name}"

    def _fresh(self, name: str, side: str) -> str:
        """Empty the target of path `name` for `side` (baseline, dsdb or all); its location."""
        if name == "sqlite-sqlite":
            path = self.folder / f"{side}_target.db"
            path.unlink(missing_ok=True)
            return str(path)
        if name == "sqlite-postgres":
            return self.scratch.postgres(f"{side}_pg")
        if name == "postgres-mariadb":
            return self.scratch.mariadb(f"{side}_maria")
        if name == "restore":
            return self.scratch.postgres(f"{side}_restore")
        if side != "baseline":
            return str(self._workdir(name) / "backups")  # emptied with the folder
        shutil.rmtree(self.folder / "baseline", ignore_errors=True)
        return str(self.folder / "baseline")

    def _connection(self, name: str, side: str) -> dict[str, str]:
        if name == "sqlite-sqlite":
            return {"driver": "sqlite", "database": str(self.folder / f"{side}_target.db")}
        if name == "postgres-mariadb":
            return {"url": mariadb_url(self.scratch.name(f"{side}_maria"))}
        role = "pg" if name == "sqlite-postgres" else "restore"
        return {"url": postgres_url(self.scratch.name(f"{side}_{role}"))}

    def _manifest(self, names: list[str], side: str) -> str:
        """A manifest of the dsdb resources of paths `names`, writing to `side`'s targets."""
        connections: dict[str, dict[str, str]] = {
            "source": {"driver": "sqlite", "database": str(self.source)}
        }
        backups: dict[str, dict[str, object]] = {}
        migrations: dict[str, dict[str, object]] = {}
        restores: dict[str, dict[str, object]] = {}
        for name in names:
            if name in MIGRATIONS:
                source = "source"
                if name == "postgres-mariadb":
                    source = "postgres_source"
                    connections[source] = {"url": postgres_url(self.pg_source)}
                connections[f"{name}-target"] = self._connection(name, side)
                migrations[name] = {
                    "from": source,
                    "to": f"{name}-target",
                    "mode": "upsert",
                    "tables": list(data.TABLES),
                }
            elif name == "backup":
                backups["source"] = {"connection": "source", "keep": 1}
            elif name == "restore":
                connections["restore-target"] = self._connection(name, side)
                origin: dict[str, object] = (
                    {"backup": "source"} if "backup" in names else {"path": self._last_backup()}
                )
                restores["source-into-postgres"] = {**origin, "to": "restore-target"}
        return dsdb_runner.build_manifest(connections, backups, restores, migrations)

    def _last_backup(self) -> str:
        """The folder of the backup the backup path took last (the restore path loads it)."""
        found = sorted((self._workdir("backup") / "backups").glob("*/*/backup.json"))
        return str(found[-1].parent) if found else "missing-backup"

    def _prepare_dsdb(self, name: str) -> Path:
        """An empty target and a fresh folder (no state, no backups) for dsdb's path `name`."""
        workdir = self._workdir(name)
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir()
        location = self._fresh(name, "dsdb")
        self._locations = {**getattr(self, "_locations", {}), (name, "dsdb"): location}
        (workdir / dsdb_runner.MANIFEST).write_text(self._manifest([name], "dsdb"))
        return workdir

    # -- measuring ----------------------------------------------------------------------

    def _measure_path(self, name: str, attempt: int) -> None:
        result = self.results[name]
        if self.with_baselines:
            target = self._fresh(name, "baseline")
            measurement = measure(self._baseline_command(name, target))
            result.baseline.append(measurement)
            self._check(result, "baseline", measurement, name, target)
            self.log(f"{name} baseline #{attempt}: {self._describe(measurement)}")
        if result.skipped:
            return  # the baseline is still measured, for when dsdb can do this path
        workdir = self._prepare_dsdb(name)
        measurement = dsdb_runner.apply(workdir)
        result.dsdb.append(measurement)
        self._check(result, "dsdb", measurement, name, self._locations[(name, "dsdb")])
        self.log(f"{name} dsdb #{attempt}: {self._describe(measurement)}")

    def _measure_plan(self) -> None:
        """Apply every selected path in one manifest, then time `dsdb plan` on it."""
        result = self.results["plan"]
        names = [n for n in self.paths if n != "plan" and not self.results[n].skipped]
        workdir = self._workdir("all")
        workdir.mkdir()
        for name in names:
            if name != "backup":
                self._fresh(name, "all")
        (workdir / dsdb_runner.MANIFEST).write_text(self._manifest(names, "all"))
        self.apply_all = dsdb_runner.apply(workdir)
        self.log(f"apply of the whole manifest: {self._describe(self.apply_all)}")
        if not self.apply_all.ok:
            result.problems.append(
                f"applying the whole manifest failed: {self.apply_all.last_line()}"
            )
            return
        for attempt in range(1, self.repeat + 1):
            measurement = dsdb_runner.plan(workdir)
            result.dsdb.append(measurement)
            if measurement.returncode == 2:
                result.problems.append("the plan after an apply still shows changes")
            elif not measurement.ok:
                result.problems.append(f"dsdb plan failed: {measurement.last_line()}")
            self.log(f"plan #{attempt}: {self._describe(measurement)}")

    def _measure_ceilings(self) -> None:
        """How close the SQLite-source paths can come to their baselines at best."""
        baselines: dict[str, float] = {
            name: best.seconds
            for name in ("sqlite-sqlite", "sqlite-postgres")
            if name in self.results and (best := self.results[name].best_baseline)
        }
        if not baselines:
            return
        self.log("measuring the floors under the SQLite-source paths")
        found = floors.measure_floors(str(self.source), self.repeat)
        self.ceilings = floors.ceilings(found, baselines)

    def _profile_slow(self, threshold: float) -> None:
        """Profile each dsdb path below `threshold` of its baseline (or a plan over 2 s)."""
        slow = {
            name
            for name, result in self.results.items()
            if not result.skipped
            and (
                (result.ratio is not None and result.ratio < threshold)
                or (name == "plan" and result.best_dsdb and result.best_dsdb.seconds > 2.0)
            )
        }
        # The plan first, while nothing moved; the restore before the backup it loads is redone.
        for name in sorted(slow, key=lambda name: (name != "plan", name == "backup")):
            self.log(f"profiling {name}")
            if name == "plan":
                workdir, arguments = self._workdir("all"), ["plan", dsdb_runner.MANIFEST]
            else:
                workdir = self._prepare_dsdb(name)
                arguments = ["apply", "--auto-approve", dsdb_runner.MANIFEST]
            try:
                self.results[name].hotspots = dsdb_runner.profile(workdir, arguments)
            except RuntimeError as error:
                self.results[name].problems.append(str(error))

    def _baseline_command(self, name: str, target: str) -> list[str]:
        if name == "sqlite-sqlite":
            call, args = "sqlite_to_sqlite", {"source": str(self.source), "target": target}
        elif name == "sqlite-postgres":
            call, args = "sqlite_to_postgres", {"source": str(self.source), "target": target}
        elif name == "postgres-mariadb":
            call, args = "postgres_to_mariadb", {"source": self.pg_source, "target": target}
        elif name == "backup":
            call = "backup_csv"
            args = {"source": str(self.source), "folder": target, "level": COMPRESS_LEVEL}
        else:
            folder = str(self.folder / "baseline")
            call, args = "restore_csv", {"folder": folder, "target": target}
        return [sys.executable, "-m", "benchmarks.baselines", call, json.dumps(args)]

    def _check(
        self, result: PathResult, side: str, measurement: Measurement, name: str, target: str
    ) -> None:
        """A measurement counts only if the target holds every row."""
        if not measurement.ok:
            result.problems.append(f"{side} failed: {measurement.last_line()}")
            return
        if name == "backup":
            return
        kind = {"sqlite-sqlite": "sqlite", "postgres-mariadb": "mariadb"}.get(name, "postgresql")
        for table in data.TABLES:
            expected = self.rows if table == "parent" else data.child_count(self.rows)
            found = count_rows(kind, target, table)
            if found != expected:
                result.problems.append(f"{side}: {table} has {found:,} rows, not {expected:,}")

    def _describe(self, measurement: Measurement) -> str:
        if not measurement.ok:
            return f"FAILED ({measurement.last_line()})"
        return f"{measurement.seconds:.2f} s, {measurement.peak_rss_mb:.0f} MB"
