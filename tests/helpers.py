"""Helpers shared by the tests: run the CLI, build small datasets, read tables back."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import sqlalchemy as sa

from dsdb_plan.cli import main
from dsdb_plan.dbschema import TableSchema, create_tables
from dsdb_plan.values import row_converter
from tests.servers import ServerDatabase


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli(capsys: Any, *args: str | Path) -> CliResult:
    """Run `dsdb ARGS` in-process and capture what it printed."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def spawn_cli(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start `dsdb ARGS` as a separate process (for locks and kills)."""
    return subprocess.Popen(
        [sys.executable, "-c", "from dsdb_plan.cli import run; run()", *map(str, args)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def kill_when(
    process: subprocess.Popen[str], condition: Callable[[], bool], timeout: float = 120
) -> None:
    """SIGKILL `process` as soon as `condition()` holds; fail if it ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return
        if process.poll() is not None:
            pytest.fail(f"apply ended before it could be killed:\n{process.communicate()}")
        time.sleep(0.01)
    process.kill()
    pytest.fail("condition never held")


class OutputLines:
    """The lines a spawned process writes to one of its pipes, read as they come, so a test
    can wait for one (e.g. a progress line) before acting on the process."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 60) -> str:
        """The first line containing `text`, once written; fails if the pipe closes first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.lines if text in line), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    pytest.fail(f"never printed {text!r}:\n{self.text}")
                self._changed.wait(left)

    @property
    def text(self) -> str:
        """Everything read so far (all of it, after `close`)."""
        return "".join(self.lines)

    def close(self) -> str:
        """Everything the process wrote, once it has closed the pipe."""
        self._reader.join(timeout=30)
        return self.text


def make_flights_db(path: Path, flights: int = 200) -> None:
    """A small SQLite database with parents and a child table pointing at them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE airlines (carrier TEXT PRIMARY KEY, name TEXT NOT NULL);
            CREATE TABLE flights (
                id INTEGER PRIMARY KEY,
                carrier TEXT NOT NULL REFERENCES airlines(carrier),
                month INTEGER NOT NULL,
                dep_delay REAL
            );
            CREATE INDEX flights_month ON flights (month);
            """
        )
        db.executemany(
            "INSERT INTO airlines VALUES (?, ?)",
            [("UA", "United"), ("AA", "American"), ("DL", "Delta")],
        )
        db.executemany(
            "INSERT INTO flights VALUES (?, ?, ?, ?)",
            [
                (i, ("UA", "AA", "DL")[i % 3], 1 + i % 12, None if i % 17 == 0 else i * 0.25)
                for i in range(1, flights + 1)
            ],
        )


def table_rows(url: str | sa.URL, table: str) -> list[tuple[Any, ...]]:
    """Every row of `table`, sorted, as plain tuples."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(sa.table(table, *_columns(engine, table)))).all()
    finally:
        engine.dispose()
    return sorted((tuple(row) for row in rows), key=repr)


def table_names(url: str | sa.URL) -> list[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return sorted(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _columns(engine: sa.Engine, table: str) -> list[sa.ColumnClause[Any]]:
    return [sa.column(c["name"]) for c in sa.inspect(engine).get_columns(table)]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


#: Each kind of database `database` makes, the servers marked so that they skip without one.
EVERY_DATABASE = [
    "sqlite",
    "duckdb",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]


def database(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> sa.Engine:
    """An empty database of `kind`: a SQLite or DuckDB file, or the test server's scratch
    database."""
    if kind == "sqlite":
        return sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}")
    if kind == "duckdb":
        return sa.create_engine(f"duckdb+dsdb:///{tmp_path / 'source.duckdb'}")
    server = request.getfixturevalue("postgres_db" if kind == "postgresql" else "mariadb_db")
    return server.engine()  # type: ignore[no-any-return]


def fill(engine: sa.Engine, schema: TableSchema, rows: Sequence[Sequence[Any]]) -> None:
    """Create `schema` and insert typed Python `rows` as each database stores them."""
    create_tables(engine, [schema])
    convert = row_converter(schema, "python", engine.dialect.name)
    table = sa.table(schema.name, *(sa.column(name) for name in schema.column_names))
    with engine.begin() as conn:
        for row in rows:
            values = dict(zip(schema.column_names, convert(row), strict=True))
            conn.execute(sa.insert(table).values(values))


def through(server: ServerDatabase, driver: str) -> str:
    """The URL of the MariaDB scratch database through `driver: mysql` or `driver: mariadb`
    (SQLAlchemy's two dialects for the one server)."""
    return server.url.set(drivername=f"{driver}+pymysql").render_as_string(hide_password=False)


#: Both names users give the MySQL/MariaDB server, as marked parameters.
MYSQL_DRIVERS = [
    pytest.param("mysql", marks=pytest.mark.mariadb),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]


#: The head of a manifest that migrates between two SQLite files under data/.
LOCAL_AND_COPY = """\
version: 1
connections:
  local: {driver: sqlite, database: data/local.db}
  copy: {driver: sqlite, database: data/copy.db}
"""
