"""Floors under dsdb's time on the SQLite-source paths: work that any run meeting the
migration requirements must do besides the baseline's, each timed on its own.

- start-up: importing the libraries dsdb is built on (SQLAlchemy, pydantic, PyYAML, click);
- read: every row of both tables fetched once through Python's sqlite3, which is what
  verifying a SQLite table costs at least: SQLite has no hash function of its own, and
  Python's sqlite3 often cannot load one (`LOADS_EXTENSIONS`);
- digest: the same rows fetched and given dsdb's portable digest (the checksum a
  PostgreSQL target is compared with), computed in Python as no SQL can for SQLite.

Start-up is a process's wall time less a bare interpreter's (the baseline paid that); the
others run in their own process (`python -m benchmarks.floors NAME SOURCE`), which prints
the seconds of the work itself, after its imports and set-up.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from benchmarks.data import TABLES
from benchmarks.measure import Measurement, measure

IMPORTS = "import sqlalchemy, pydantic, yaml, click"
#: Whether this Python's sqlite3 may load an extension (one with a hash function, say).
LOADS_EXTENSIONS = hasattr(sqlite3.Connection, "enable_load_extension")
FLOORS = ("start-up", "read", "digest")


@dataclass(frozen=True)
class Ceiling:
    """The best ratio a path can reach: its baseline over the baseline plus a floor."""

    path: str
    floor: str
    seconds: float
    baseline: float

    @property
    def ratio(self) -> float:
        return self.baseline / (self.baseline + self.seconds)


def measure_floors(source: str, repeat: int) -> dict[str, float]:
    """Each floor's best time over `repeat` runs."""
    bare = min(run.seconds for run in _runs([sys.executable, "-c", "pass"], repeat))
    imports = min(run.seconds for run in _runs([sys.executable, "-c", IMPORTS], repeat))
    floors = {"start-up": max(imports - bare, 0.0)}
    for name in ("read", "digest"):
        runs = _runs([sys.executable, "-m", "benchmarks.floors", name, source], repeat)
        floors[name] = min(float(run.last_line()) for run in runs)
    return floors


def ceilings(floors: dict[str, float], baselines: dict[str, float]) -> list[Ceiling]:
    """What the floors leave of the aim, for each SQLite-source path with a baseline."""
    found = []
    if "sqlite-sqlite" in baselines:
        # Verification reads the copied rows at least once; the source's fingerprint is
        # left out, as if the plan had it already.
        seconds = floors["start-up"] + floors["read"]
        what = "start-up + reading the copied rows once"
        found.append(Ceiling("sqlite-sqlite", what, seconds, baselines["sqlite-sqlite"]))
    if "sqlite-postgres" in baselines:
        # The copy reads the rows anyway: only digesting them is extra, in the same process.
        seconds = floors["start-up"] + max(floors["digest"] - floors["read"], 0.0)
        what = "start-up + the portable digest of the rows the copy reads"
        found.append(Ceiling("sqlite-postgres", what, seconds, baselines["sqlite-postgres"]))
    return found


def _runs(command: list[str], repeat: int) -> list[Measurement]:
    runs = [measure(command) for _ in range(repeat)]
    failed = [run for run in runs if not run.ok]
    if failed:
        raise RuntimeError(f"{' '.join(command)} failed: {failed[0].last_line()}")
    return runs


Work = Callable[[], None]


def _chunks(conn: sqlite3.Connection, table: str) -> Iterator[list[Any]]:
    """The rows of one benchmark table, 10,000 at a time, as the copy fetches them."""
    cursor = conn.execute(f"SELECT {', '.join(TABLES[table])} FROM {table}")
    while rows := cursor.fetchmany(10_000):
        yield rows


def _read(source: str) -> Work:
    conn = sqlite3.connect(source)

    def work() -> None:
        for table in TABLES:
            for _ in _chunks(conn, table):
                pass

    return work


def _digest(source: str) -> Work:
    import sqlalchemy as sa

    from dsdb_plan.dbschema import reflect_tables
    from dsdb_plan.migrate.digest import SubsetDigest

    schemas = reflect_tables(sa.create_engine(f"sqlite:///{source}"), list(TABLES))
    conn = sqlite3.connect(source)

    def work() -> None:
        for schema in schemas:
            digest = SubsetDigest(schema, TABLES[schema.name])
            for rows in _chunks(conn, schema.name):
                digest.add(rows)

    return work


if __name__ == "__main__":
    work = {"read": _read, "digest": _digest}[sys.argv[1]](sys.argv[2])
    started = time.perf_counter()
    work()
    print(time.perf_counter() - started)
