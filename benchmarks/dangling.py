"""What counting dangling references costs: a migration's lookups and a restore's count.

`lookups`: `migrate/integrity.count_dangling` on a SQLite child of N rows whose reference
points at a 100,000-row parent, through its primary key (`--indexed`) or through a declared
reference to an unindexed column, looked up with EXISTS and with IN
(`looks_up_by_membership` switched for the run), alternating round by round, best kept.

`restore`: a SQLite source of 100,000 parents and 1,000,000 children (1 in 100 pointing at
no parent) backed up in `--format`, then, alternating, `archive/references.count_dangling`
on the backup's files and the restore itself into `--target` (default a SQLite file).

    python -m benchmarks.dangling lookups --rows 1000000 --indexed
    python -m benchmarks.dangling lookups --rows 5000
    python -m benchmarks.dangling restore --format parquet
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from dsdb_plan.archive import new_backup_id, restore_backup, write_backup
from dsdb_plan.archive import references as backup_references
from dsdb_plan.dbschema import ForeignKeySchema
from dsdb_plan.engines import engine_for
from dsdb_plan.migrate import integrity
from dsdb_plan.migrate.subset import select_tables

PARENTS = 100_000
_SERIES = "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {n} - 1)"


def _source(path: Path, children: int, *, declared_key: bool) -> None:
    """`parent` (id, code = id) and `child` whose `pid` is NULL for 1 row in 50 and else
    spread over 101,000 values: about 1 in 100 point at no parent."""
    key = "REFERENCES parent (id)" if declared_key else ""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY, code INTEGER, name TEXT)")
        db.execute(f"CREATE TABLE child (id INTEGER PRIMARY KEY, pid INTEGER {key}, v REAL)")
        db.execute(f"INSERT INTO parent {_SERIES.format(n=PARENTS)} SELECT i, i, 'p' || i FROM s")
        db.execute(
            f"INSERT INTO child {_SERIES.format(n=children)} SELECT i, CASE WHEN i % 50 = 0 "
            f"THEN NULL ELSE (i * 7919) % {PARENTS + PARENTS // 100} END, i * 0.5 FROM s"
        )


def _best(rounds: int, runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times.setdefault(name, []).append(time.perf_counter() - started)
    return {name: round(min(found), 3) for name, found in times.items()}


def lookups(folder: Path, rows: int, indexed: bool, rounds: int) -> dict[str, float]:
    path = folder / "source.db"
    _source(path, rows, declared_key=indexed)
    engine = sa.create_engine(f"sqlite:///{path}")
    declared = [] if indexed else [("child", ForeignKeySchema(None, ("pid",), "parent", ("code",)))]
    chosen = select_tables(engine, None, "none", references=declared)
    rules = engine_for(engine.dialect)
    own = rules.capabilities

    def count(membership: bool) -> Callable[[], object]:
        def run() -> object:
            rules.capabilities = dataclasses.replace(own, looks_up_by_membership=membership)  # type: ignore[misc]
            try:
                with engine.connect() as conn:
                    return integrity.count_dangling(conn, chosen)
            finally:
                rules.capabilities = own  # type: ignore[misc]

        return run

    return _best(rounds, {"EXISTS": count(False), "IN": count(True)})


def restore(folder: Path, data_format: str, target: str | None, rounds: int) -> dict[str, float]:
    path = folder / "source.db"
    _source(path, 1_000_000, declared_key=True)
    source = sa.create_engine(f"sqlite:///{path}")
    info = write_backup(
        source,
        folder / "backups",
        new_backup_id(dt.datetime.now(dt.UTC)),
        data_format=data_format,  # type: ignore[arg-type]
    )
    into = sa.create_engine(target or f"sqlite:///{folder / 'target.db'}")
    found = backup_references.count_dangling(info, info.tables)

    def restored() -> None:
        with into.begin() as conn:
            for table in ("child", "parent"):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        restore_backup(info.path, into, on_dangling="keep", dangling=found)

    return _best(
        rounds,
        {"count": lambda: backup_references.count_dangling(info, info.tables), "restore": restored},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["lookups", "restore"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--indexed", action="store_true")
    parser.add_argument("--format", default="parquet", choices=["parquet", "jsonl"])
    parser.add_argument("--target", help="a SQLAlchemy URL to restore into")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dsdb-dangling-") as folder:
        if args.what == "lookups":
            result = lookups(Path(folder), args.rows, args.indexed, args.repeat)
        else:
            result = restore(Path(folder), args.format, args.target, args.repeat)
    print(args.what, vars(args), result)


if __name__ == "__main__":
    main()
