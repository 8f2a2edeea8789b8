"""Everything each path is timed against besides dsdb: plain-driver and engine baselines, and
the tools users would pick instead (pgloader, Sling, dlt), each run as its own process.

The first contender of a path is the one its aim is measured against (`AIMS`). Peers are
installed by `benchmarks/setup.sh`; one that is missing is skipped with a note saying so.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.data import TABLES
from benchmarks.servers import mariadb_url, postgres_conninfo, postgres_url
from dsdb_plan.archive.format import COMPRESS_LEVEL


@dataclass(frozen=True)
class Contender:
    key: str  # names its target (database, file or folder) and its raw results
    label: str  # as the report shows it; a peer's `{version}` is its installed version
    engine: str  # of its target: sqlite, postgresql, mariadb, duckdb, or files
    peer: str | None = None  # the tool it runs, for the tools users would pick instead


@dataclass(frozen=True)
class Sources:
    """Where the generated data is, and a folder for the contenders' own files."""

    sqlite: str  # the SQLite source file
    postgres: str  # the PostgreSQL source database's name ("" when no path reads it)
    folder: Path


#: Sling reads SQLite's BLOB as text and PostgreSQL refuses it; its documented column cast
#: is what a user would add.
SLING = "Sling {version} (payload cast to binary)"
#: The password dlt insists on; the benchmark's servers trust local connections.
DLT_PASSWORD = "unused"

#: Each path's contenders, its aim's first: dsdb's throughput must reach the given share of
#: that contender's (1/3 is "within 3x").
CONTENDERS: dict[str, tuple[Contender, ...]] = {
    "sqlite-sqlite": (
        Contender("baseline", "ATTACH + INSERT … SELECT", "sqlite"),
        Contender("sling", SLING, "sqlite", "sling"),
        Contender("dlt", "dlt {version} → DuckDB (pyarrow backend)", "duckdb", "dlt"),
    ),
    "sqlite-postgres": (
        Contender("baseline", "psycopg COPY script", "postgresql"),
        Contender("pgloader", "pgloader {version}", "postgresql", "pgloader"),
        Contender("sling", SLING, "postgresql", "sling"),
        Contender("dlt", "dlt {version} (pyarrow backend)", "postgresql", "dlt"),
    ),
    "postgres-mariadb": (
        Contender("baseline", "COPY TO file + LOAD DATA LOCAL INFILE script", "mariadb"),
        Contender("executemany", "psycopg + PyMySQL executemany script", "mariadb"),
        Contender("sling", SLING, "mariadb", "sling"),
    ),
    "backup": (
        Contender("baseline", "SQLite backup API", "files"),
        Contender("csv", "gzip'd CSV script (csv module)", "files"),
    ),
    "backup-postgres": (Contender("baseline", "pg_dump -Fc", "files"),),
    "restore": (
        Contender("baseline", "gzip'd CSV → COPY FROM STDIN script", "postgresql"),
        Contender("pg_restore", "pg_restore of the pg_dump -Fc file", "postgresql"),
    ),
}
AIMS = {
    "sqlite-sqlite": 0.8,
    "sqlite-postgres": 0.8,
    "postgres-mariadb": 0.8,
    "backup": 1 / 3,
    "backup-postgres": 1 / 3,
    "restore": 0.8,
}
#: The folder the backup path's CSV contender writes and the restore baseline loads.
CSV_BACKUP = "csv_backup"
#: The file pg_dump writes on the backup-postgres path and pg_restore loads on restore.
PG_DUMP = "postgres.dump"


def installed(peer: str) -> str | None:
    """The installed version of `peer`, or None when it is not installed."""
    if peer == "pgloader":
        if not shutil.which("pgloader"):
            return None
        run = subprocess.run(["pgloader", "--version"], capture_output=True, text=True)
        return run.stdout.split('"')[1] if run.stdout.count('"') >= 2 else "installed"
    package = {"sling": "sling-linux-amd64", "dlt": "dlt"}[peer]
    try:
        version = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
    if peer == "dlt" and not all(
        importlib.util.find_spec(module) for module in ("pyarrow", "duckdb", "psycopg2")
    ):
        return None
    return version


def command(
    contender: Contender, path: str, sources: Sources, target: str
) -> tuple[list[str], dict[str, str]]:
    """The command that runs `contender` on `path` into `target`, and its environment."""
    if contender.peer == "pgloader":
        return _pgloader(sources, target), {}
    if contender.peer == "sling":
        return _sling(contender, path, sources, target)
    if contender.peer == "dlt":
        return _dlt(contender, sources, target)
    dump = str(sources.folder / PG_DUMP)
    if path == "backup-postgres":
        return ["pg_dump", "-Fc", "-f", dump, postgres_conninfo(sources.postgres)], {}
    if contender.key == "pg_restore":
        return ["pg_restore", "--no-owner", "-d", postgres_conninfo(target), dump], {}
    call, args = _baseline(contender.key, path, sources, target)
    return [sys.executable, "-m", "benchmarks.baselines", call, json.dumps(args)], {}


def _baseline(key: str, path: str, sources: Sources, target: str) -> tuple[str, dict[str, object]]:
    source = sources.sqlite
    if path == "sqlite-sqlite":
        return "sqlite_to_sqlite", {"source": source, "target": target}
    if path == "sqlite-postgres":
        return "sqlite_to_postgres", {"source": source, "target": target}
    if path == "postgres-mariadb" and key == "executemany":
        return "postgres_to_mariadb", {"source": sources.postgres, "target": target}
    if path == "postgres-mariadb":
        folder = str(sources.folder)
        return "postgres_to_mariadb_load_data", {
            "source": sources.postgres,
            "target": target,
            "folder": folder,
        }
    if path == "backup" and key == "csv":
        return "backup_csv", {"source": source, "folder": target, "level": COMPRESS_LEVEL}
    if path == "backup":
        return "backup_sqlite_api", {"source": source, "folder": target}
    folder = str(sources.folder / CSV_BACKUP)
    return "restore_csv", {"folder": folder, "target": target}


def _pgloader(sources: Sources, target: str) -> list[str]:
    """pgloader's command file: only the benchmark's tables (not SQLite's statistics)."""
    load = sources.folder / "pgloader.load"
    names = ", ".join(f"'{name}'" for name in TABLES)
    load.write_text(
        "LOAD DATABASE\n"
        f"  FROM sqlite://{sources.sqlite}\n"
        f"  INTO {postgres_url(target, scheme='postgresql')}\n"
        f"  INCLUDING ONLY TABLE NAMES LIKE {names};\n"
    )
    return ["pgloader", "--no-ssl-cert-verification", str(load)]


def _sling(
    contender: Contender, path: str, sources: Sources, target: str
) -> tuple[list[str], dict[str, str]]:
    """A Sling replication of both tables, connections given as environment variables."""
    if path == "postgres-mariadb":
        source_url = postgres_url(sources.postgres, scheme="postgresql") + "?sslmode=disable"
        streams, schema = [f"public.{name}" for name in TABLES], target
    else:
        source_url, streams = f"sqlite://{sources.sqlite}", [f"main.{name}" for name in TABLES]
        schema = "main" if contender.engine == "sqlite" else "public"
    if contender.engine == "sqlite":
        target_url = f"sqlite://{target}"
    elif contender.engine == "mariadb":
        target_url = mariadb_url(target).replace("mysql+pymysql://", "mysql://")
    else:
        target_url = postgres_url(target, scheme="postgresql") + "?sslmode=disable"
    replication = {
        "source": "BENCH_SOURCE",
        "target": "BENCH_TARGET",
        "defaults": {
            "mode": "full-refresh",
            "object": f"{schema}.{{stream_table}}",
            "columns": {"payload": "binary"},
        },
        "streams": dict.fromkeys(streams),
    }
    config = sources.folder / "sling-replication.yaml"
    config.write_text(json.dumps(replication))  # JSON is YAML
    env = {
        "BENCH_SOURCE": source_url,
        "BENCH_TARGET": target_url,
        "SLING_HOME_DIR": str(sources.folder / "sling-home"),
        "SLING_DISABLE_TELEMETRY": "true",
    }
    return [sling_binary(), "run", "-r", str(config)], env


def sling_binary() -> str:
    """The Sling executable the `sling-linux-amd64` wheel carries."""
    import sling_linux_amd64  # type: ignore[import-not-found]

    return str(sling_linux_amd64.SLING_BIN)


def _dlt(contender: Contender, sources: Sources, target: str) -> tuple[list[str], dict[str, str]]:
    if contender.engine == "duckdb":
        destination, into = "duckdb", target
    else:
        url = postgres_url(target, scheme="postgresql")
        destination, into = "postgres", url.replace("@", f":{DLT_PASSWORD}@", 1)
    args = {
        "source_url": f"sqlite:///{sources.sqlite}",
        "destination": destination,
        "target": into,
        "pipelines_dir": str(sources.folder / "dlt-pipelines"),
    }
    env = {"RUNTIME__DLTHUB_TELEMETRY": "false"}
    return [sys.executable, "-m", "benchmarks.dlt_pipeline", json.dumps(args)], env
