"""One benchmark run at one size: set up the data, time every path, check what was copied."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import contenders, data, dsdb_runner, floors
from benchmarks.contenders import Contender, Sources
from benchmarks.landed import Database, compare, source_has_identity
from benchmarks.measure import Measurement, measure
from benchmarks.observe import observe
from benchmarks.servers import Scratch, count_rows, mariadb_url, postgres_conninfo, postgres_url

#: Paths in the order they run; `restore` reads what `backup` wrote.
PATHS = (
    "sqlite-sqlite",
    "sqlite-postgres",
    "postgres-mariadb",
    "backup",
    "backup-postgres",
    "restore",
    "plan",
    "plan-change",
)
#: Paths timed after the copies, on the manifest of them all.
PLANS = ("plan", "plan-change")
#: The key of this checkout's dsdb; earlier revisions are keyed by `builds.key`.
DSDB = "dsdb"
#: This checkout's dsdb with its migrations at `verify: counts` (`--verify-counts`).
COUNTS = "dsdb+counts"
MIGRATIONS = {"sqlite-sqlite", "sqlite-postgres", "postgres-mariadb"}
#: Paths that read the data generated into PostgreSQL.
POSTGRES_SOURCE = {"postgres-mariadb", "backup-postgres"}
TITLES = {
    "sqlite-sqlite": "SQLite → SQLite (migration)",
    "sqlite-postgres": "SQLite → PostgreSQL (migration)",
    "postgres-mariadb": "PostgreSQL → MariaDB (migration)",
    "backup": "backup of the SQLite data",
    "backup-postgres": "backup of the PostgreSQL data",
    "restore": "restore of the SQLite backup into PostgreSQL",
    "plan": "plan with nothing changed",
    "plan-change": "plan after one source row changed",
}
#: The engine each path writes to ("files" for a backup).
TARGET_ENGINE = {
    "sqlite-sqlite": "sqlite",
    "sqlite-postgres": "postgresql",
    "postgres-mariadb": "mariadb",
    "backup": "files",
    "backup-postgres": "files",
    "restore": "postgresql",
}


@dataclass
class PathResult:
    """Every measurement of one path, run by run in the order of the rounds; the report
    takes each side's median run."""

    name: str
    rows: int
    dsdb: list[Measurement] = field(default_factory=list)
    #: Every other contender's runs by its key; "baseline" is the one the aim is measured on.
    runs: dict[str, list[Measurement]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    #: What each contender (and "dsdb") landed, measured on its target after its first run.
    landed: dict[str, str] = field(default_factory=dict)
    #: Why a contender has no time: not installed, or it failed.
    notes: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    skipped: str | None = None
    hotspots: dict[str, list[dsdb_runner.Hotspot]] = field(default_factory=dict)

    @property
    def baseline(self) -> list[Measurement]:
        return self.runs.get("baseline", [])

    @property
    def aim(self) -> float | None:
        return contenders.AIMS.get(self.name)

    @staticmethod
    def _best(measurements: list[Measurement]) -> Measurement | None:
        """The median run of those that succeeded (the lower one of an even count)."""
        ok = sorted((m for m in measurements if m.ok or m.returncode == 2), key=_seconds)
        return ok[(len(ok) - 1) // 2] if ok else None

    @property
    def best_dsdb(self) -> Measurement | None:
        return self._best(self.dsdb)

    @property
    def best_baseline(self) -> Measurement | None:
        return self._best(self.baseline)

    def best(self, key: str) -> Measurement | None:
        return self._best(self.measurements(key))

    def measurements(self, key: str) -> list[Measurement]:
        return self.dsdb if key == DSDB else self.runs.get(key, [])

    def round_ratios(self, key: str) -> list[float | None]:
        """Round by round, the baseline's time over `key`'s (None where either failed): on
        a shared machine, the two of one round ran under about the same load."""
        pairs = zip(self.baseline, self.measurements(key), strict=False)
        return [b.seconds / m.seconds if b.ok and m.ok else None for b, m in pairs]

    @property
    def ratio(self) -> float | None:
        """dsdb's throughput as a share of the baseline's: baseline time / dsdb time."""
        if self.best_dsdb is None or self.best_baseline is None:
            return None
        return self.best_baseline.seconds / self.best_dsdb.seconds

    @property
    def peak_rss_mb(self) -> float | None:
        """The highest peak over all of dsdb's runs of this path."""
        return max((m.peak_rss_mb for m in self.dsdb if m.ok or m.returncode == 2), default=None)


def select(only: list[str] | None, baselines: bool = True) -> list[str]:
    """The paths to run: `--only` names, plus what they need (restore loads the backups:
    dsdb's of the SQLite data, and for its baselines the others')."""
    if not only:
        return list(PATHS)
    chosen = set(only)
    if chosen <= set(PLANS):
        chosen = set(PATHS) - set(PLANS) | chosen
    if "plan-change" in chosen:
        chosen.add("plan")
    if "restore" in chosen:
        chosen.update(("backup", "backup-postgres") if baselines else ("backup",))
    return [name for name in PATHS if name in chosen]


class Suite:
    """Runs the chosen paths at `rows` parent rows, in `repeat` rounds.

    In each round every contender of a path (baselines, peers, this dsdb and the dsdb of
    each earlier revision in `builds`) runs once as a whole process, in an order rotated
    round by round, so that each meets the machine's changing load in turn. Each dsdb path
    has its own folder and manifest holding only its resource, so its time is its own work
    (dsdb plans every resource of a manifest, even with `--target`). The plans run on a
    manifest of all of them, applied once beforehand.
    """

    def __init__(
        self,
        rows: int,
        paths: list[str],
        repeat: int,
        baselines: bool,
        migrations: tuple[bool, str],
        log: Callable[[str], None],
        peers: bool | set[str] = True,
        builds: dict[str, list[str]] | None = None,
        source: Path | None = None,
        floors: bool = True,
        counts: bool = False,
    ) -> None:
        self.rows = rows
        self.total_rows = rows + data.child_count(rows)
        self.paths = paths
        self.repeat = repeat
        self.with_baselines = baselines
        self.with_peers = peers
        self.sources: dict[str, Database] = {}
        self.migrations_ok = migrations[0]
        self.log = log
        self.results = {name: PathResult(name, self.total_rows) for name in paths}
        self.setup_seconds = 0.0
        self.apply_all: Measurement | None = None
        self.ceilings: list[floors.Ceiling] = []
        #: Each dsdb's command, by its key: this checkout's first.
        self.builds = {DSDB: [dsdb_runner.DSDB], **(builds or {})}
        #: Builds that run this checkout with other migration options, on the migrations.
        self.variants: dict[str, dict[str, object]] = {}
        if counts:
            self.builds[COUNTS] = [dsdb_runner.DSDB]
            self.variants[COUNTS] = {"verify": "counts"}
        self.given_source = source
        self.with_floors = floors
        #: The load average (1, 5, 15 min) as each round began.
        self.loads: list[tuple[float, ...]] = []

    def run(self, profile: bool = False) -> dict[str, PathResult]:
        with tempfile.TemporaryDirectory(prefix="dsdb-bench-") as folder:
            self.folder = Path(folder)
            self.scratch = Scratch()
            try:
                self._run(profile)
            finally:
                self.scratch.drop_all()
        return self.results

    def _run(self, profile: bool) -> None:
        started = time.perf_counter()
        self.source = self.folder / "source.db"
        if self.given_source:
            # A copy: the plan after a change updates a row of it.
            shutil.copyfile(self.given_source, self.source)
        else:
            self.log(f"generating {self.rows:,} + {data.child_count(self.rows):,} rows")
            data.write_sqlite(self.source, self.rows)
        self.pg_source = ""
        if POSTGRES_SOURCE & set(self.paths):
            self.pg_source = self.scratch.postgres("pg_source")
            data.write_postgres(postgres_conninfo(self.pg_source), self.rows)
        self.setup_seconds = time.perf_counter() - started
        for name in self.paths:
            if name in MIGRATIONS and not self.migrations_ok:
                self.results[name].skipped = "not measured: migrations unavailable"
        copies = [name for name in self.paths if name not in PLANS]
        for round_ in range(self.repeat):
            self.loads.append(os.getloadavg())
            for name in copies:
                self._measure_path(name, round_)
        if "plan" in self.paths:
            self._measure_plan()
        if self.with_floors:
            self._measure_ceilings()
        if profile:
            self._profile_slow()

    # -- where each side writes ---------------------------------------------------------

    def _workdir(self, name: str, build: str = DSDB) -> Path:
        return self.folder / f"{build}-{name}"

    def _role(self, name: str, side: str) -> str:
        return f"{side}_{name}".replace("-", "_")

    def _fresh(self, name: str, side: str, engine: str | None = None) -> str:
        """Empty the target of `side` (a contender's key, dsdb or all) on path `name`, on
        the path's engine or `engine`; its location (a file, folder or database name)."""
        engine = engine or TARGET_ENGINE[name]
        role = self._role(name, side)
        if engine in ("sqlite", "duckdb"):
            self._release(name, side, engine)
            return str(self._file(role, engine))
        if engine == "postgresql":
            return self.scratch.postgres(role)
        if engine == "mariadb":
            return self.scratch.mariadb(role)
        if side in self.builds or side == "all":
            build = side if side in self.builds else DSDB
            return str(self._workdir(name, build) / "backups")  # emptied with the folder
        folder = self.folder / (contenders.CSV_BACKUP if side == "csv" else role)
        shutil.rmtree(folder, ignore_errors=True)
        return str(folder)

    def _release(self, name: str, side: str, engine: str) -> None:
        """Free a measured target's space (at 10,000,000 rows each copy takes gigabytes);
        backups stay, the restore path loads them."""
        role = self._role(name, side)
        if engine in ("postgresql", "mariadb"):
            self.scratch.drop(role)
        elif engine in ("sqlite", "duckdb"):
            path = self._file(role, engine)
            for stale in (path, path.with_name(path.name + ".wal")):
                stale.unlink(missing_ok=True)

    def _file(self, role: str, engine: str) -> Path:
        return self.folder / f"{role}.{'db' if engine == 'sqlite' else 'duckdb'}"

    def _connection(self, name: str, side: str) -> dict[str, str]:
        role = self._role(name, side)
        if name == "sqlite-sqlite":
            return {"driver": "sqlite", "database": str(self._file(role, "sqlite"))}
        if name == "postgres-mariadb":
            return {"url": mariadb_url(self.scratch.name(role))}
        return {"url": postgres_url(self.scratch.name(role))}

    def _manifest(self, names: list[str], side: str) -> str:
        """A manifest of the dsdb resources of paths `names`, writing to `side`'s targets."""
        connections: dict[str, dict[str, str]] = {
            "source": {"driver": "sqlite", "database": str(self.source)}
        }
        backups: dict[str, dict[str, object]] = {}
        migrations: dict[str, dict[str, object]] = {}
        restores: dict[str, dict[str, object]] = {}
        for name in names:
            if name in POSTGRES_SOURCE:
                connections["postgres_source"] = {"url": postgres_url(self.pg_source)}
            if name in MIGRATIONS:
                source = "postgres_source" if name in POSTGRES_SOURCE else "source"
                connections[f"{name}-target"] = self._connection(name, side)
                migrations[name] = {
                    "from": source,
                    "to": f"{name}-target",
                    "mode": "upsert",
                    "tables": list(data.TABLES),
                    **self.variants.get(side, {}),
                }
            elif name == "backup":
                backups["source"] = {"connection": "source", "keep": 1}
            elif name == "backup-postgres":
                backups["postgres"] = {"connection": "postgres_source", "keep": 1}
            elif name == "restore":
                connections["restore-target"] = self._connection(name, side)
                origin: dict[str, object] = (
                    {"backup": "source"} if "backup" in names else {"path": self._last_backup()}
                )
                restores["source-into-postgres"] = {**origin, "to": "restore-target"}
        return dsdb_runner.build_manifest(connections, backups, restores, migrations)

    def _last_backup(self) -> str:
        """The folder of the backup this dsdb took last on the backup path (the restore
        path loads it, by every dsdb)."""
        found = sorted((self._workdir("backup") / "backups").glob("*/*/backup.json"))
        return str(found[-1].parent) if found else "missing-backup"

    def _prepare_dsdb(self, name: str, build: str = DSDB) -> Path:
        """An empty target and a fresh folder (no state, no backups) for the path `name` of
        the dsdb `build`."""
        workdir = self._workdir(name, build)
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir()
        location = self._fresh(name, build)
        self._locations = {**getattr(self, "_locations", {}), (name, build): location}
        (workdir / dsdb_runner.MANIFEST).write_text(self._manifest([name], build))
        return workdir

    def _cache(self, build: str) -> dict[str, str]:
        """Each dsdb's own page cache, warm after its first run as a user's would be."""
        return {"DSDB_CACHE_DIR": str(self.folder / f"cache-{build}")}

    # -- measuring ----------------------------------------------------------------------

    def _measure_path(self, name: str, round_: int) -> None:
        """One round of path `name`: each contender once, the order turned by `round_`."""
        result = self.results[name]
        entries: list[Contender | str] = []
        if self.with_baselines:
            entries += [c for c in contenders.CONTENDERS[name] if self._timed(c)]
        if not result.skipped:  # the baselines are still measured, for when dsdb can do this
            entries += self._builds_for(name)
        shift = round_ % max(len(entries), 1)
        for entry in entries[shift:] + entries[:shift]:
            if isinstance(entry, Contender):
                self._measure_contender(result, entry, round_ + 1)
            else:
                self._measure_dsdb(result, entry, round_ + 1)

    def _builds_for(self, name: str) -> list[str]:
        """The dsdb builds that run path `name`: the variants only the migrations."""
        return [b for b in self.builds if b not in self.variants or name in MIGRATIONS]

    def _label(self, build: str) -> str:
        if build in self.variants:
            options = ", ".join(f"{k}: {v}" for k, v in self.variants[build].items())
            return f"dsdb, {options}"
        return f"dsdb at {build.removeprefix('dsdb_')}"

    def _timed(self, contender: Contender) -> bool:
        """Whether the contender runs: a baseline always; a peer if peers are wanted (all,
        or this one by name)."""
        if not contender.peer or self.with_peers is True:
            return True
        return bool(self.with_peers) and contender.peer in self.with_peers

    def _measure_dsdb(self, result: PathResult, build: str, attempt: int) -> None:
        name = result.name
        workdir = self._prepare_dsdb(name, build)
        measurement = dsdb_runner.apply(workdir, self.builds[build], self._cache(build))
        if build == DSDB:
            result.dsdb.append(measurement)
        else:
            result.labels[build] = self._label(build)
            result.runs.setdefault(build, []).append(measurement)
        location = self._locations[(name, build)]
        if self._check(result.problems, build, measurement, name, location) and attempt == 1:
            verified = ", verified" in measurement.output
            self._landed(result, build, TARGET_ENGINE[name], location, verified)
        self.log(
            f"{name} {build} #{attempt}: {self._describe(measurement, result.landed.get(build))}"
        )
        self._release(name, build, TARGET_ENGINE[name])

    def _measure_contender(self, result: PathResult, contender: Contender, attempt: int) -> None:
        """Time one run of a baseline or peer; on its first, measure what it landed."""
        key, name = contender.key, result.name
        version = contenders.installed(contender.peer) if contender.peer else None
        result.labels[key] = contender.label.format(version=version or "(not installed)")
        if contender.peer and version is None:
            result.notes[key] = "skipped, not installed: run benchmarks/setup.sh"
            return
        target = self._fresh(name, key, contender.engine)
        sources = Sources(str(self.source), self.pg_source, self.folder)
        command, env = contenders.command(contender, name, sources, target)
        measurement = measure(command, env=env)
        result.runs.setdefault(key, []).append(measurement)
        # A peer that fails or loses rows is a finding about the peer, not a harness problem.
        problems: list[str] = [] if contender.peer else result.problems
        complete = self._check(problems, key, measurement, name, target, contender.engine)
        if complete and attempt == 1:
            self._landed(result, key, contender.engine, target)
        elif not complete and contender.peer:
            result.notes.setdefault(key, "; ".join(problems))
        self.log(f"{name} {key} #{attempt}: {self._describe(measurement, result.landed.get(key))}")
        self._release(name, key, contender.engine)

    def _landed(
        self, result: PathResult, key: str, engine: str, target: str, verified: bool = False
    ) -> None:
        """Compare the target with the source: types, NOT NULL, keys, identity, values."""
        if engine == "files":
            return  # a backup is files: what it holds shows when it is restored
        name = result.name
        source_engine = "postgresql" if name in POSTGRES_SOURCE else "sqlite"
        if source_engine not in self.sources:
            location = self.pg_source if source_engine == "postgresql" else str(self.source)
            self.sources[source_engine] = observe(source_engine, location, data.TABLES)
        source = self.sources[source_engine]
        try:
            landed = observe(engine, target, data.TABLES)
            found = compare(source, landed, source_has_identity(source))
        except Exception as error:  # a target a tool left unreadable is reported, not fatal
            result.landed[key] = f"could not be read: {error}"
            return
        result.landed[key] = found.summary + (", verified" if verified else "")

    def _measure_plan(self) -> None:
        """Apply every selected path in one manifest, then time `dsdb plan` on it, by each
        dsdb in turn (each with its own page cache); then, with `plan-change`, again after
        one source row changed (each dsdb plans once untimed first: its first plan reads
        the changed pages)."""
        result = self.results["plan"]
        names = [n for n in self.paths if n not in PLANS and not self.results[n].skipped]
        workdir = self._workdir("all")
        workdir.mkdir()
        for name in names:
            if TARGET_ENGINE[name] != "files":
                self._fresh(name, "all")
        (workdir / dsdb_runner.MANIFEST).write_text(self._manifest(names, "all"))
        self.apply_all = dsdb_runner.apply(workdir)
        self.log(f"apply of the whole manifest: {self._describe(self.apply_all)}")
        if not self.apply_all.ok:
            result.problems.append(
                f"applying the whole manifest failed: {self.apply_all.last_line()}"
            )
            return
        self._plan_rounds(result, workdir, expected=0)
        if "plan-change" not in self.paths:
            return
        with sqlite3.connect(self.source) as conn:
            conn.execute("UPDATE parent SET name = name || '!' WHERE id = ?", (self.rows // 2,))
        conn.close()
        for build in self._builds_for("plan-change"):
            dsdb_runner.plan(workdir, self.builds[build], self._cache(build))
        self._plan_rounds(self.results["plan-change"], workdir, expected=2)

    def _plan_rounds(self, result: PathResult, workdir: Path, expected: int) -> None:
        """`repeat` rounds of `dsdb plan` by each dsdb, which must exit with `expected`."""
        builds = self._builds_for(result.name)
        for round_ in range(self.repeat):
            shift = round_ % len(builds)
            for build in builds[shift:] + builds[:shift]:
                plan = dsdb_runner.plan(workdir, self.builds[build], self._cache(build))
                if build == DSDB:
                    result.dsdb.append(plan)
                else:
                    result.labels[build] = self._label(build)
                    result.runs.setdefault(build, []).append(plan)
                if plan.returncode not in (0, 2):
                    result.problems.append(f"{build} plan failed: {plan.last_line()}")
                elif plan.returncode != expected:
                    result.problems.append(
                        f"{build} plan exited {plan.returncode}, not {expected}"
                        + (": an apply left changes" if expected == 0 else ": a change unseen")
                    )
                self.log(f"{result.name} {build} #{round_ + 1}: {self._describe(plan)}")

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

    def _profile_slow(self) -> None:
        """Profile each dsdb path that misses its aim (or a plan over 2 s)."""
        slow = {
            name
            for name, result in self.results.items()
            if not result.skipped
            and (
                (result.ratio is not None and result.aim and result.ratio < result.aim)
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

    def _check(
        self,
        problems: list[str],
        side: str,
        measurement: Measurement,
        name: str,
        target: str,
        engine: str | None = None,
    ) -> bool:
        """Whether the run succeeded and its target holds every row; failures go to
        `problems`."""
        if not measurement.ok:
            problems.append(f"{side} failed: {measurement.last_line()}")
            return False
        engine = engine or TARGET_ENGINE[name]
        if engine == "files":
            return True
        complete = True
        for table in data.TABLES:
            expected = self.rows if table == "parent" else data.child_count(self.rows)
            try:
                found = count_rows(engine, target, table)
            except Exception as error:  # a table a tool did not create
                problems.append(f"{side}: {table} cannot be counted ({error})")
                complete = False
                continue
            if found != expected:
                problems.append(f"{side}: {table} has {found:,} rows, not {expected:,}")
                complete = False
        return complete

    def load_averages(self) -> list[str]:
        return [" / ".join(f"{value:.1f}" for value in load) for load in self.loads]

    def _describe(self, measurement: Measurement, landed: str | None = None) -> str:
        if measurement.returncode not in (0, 2):  # 2: a plan that shows changes
            return f"FAILED ({measurement.last_line()})"
        described = f"{measurement.seconds:.2f} s, {measurement.peak_rss_mb:.0f} MB"
        return described + (f"; lands: {landed}" if landed else "")


def _seconds(measurement: Measurement) -> float:
    return measurement.seconds
