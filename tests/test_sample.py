"""Sampled subsets: the same rows on every apply, computed by the source database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from dsdb_plan import sqlfunctions
from dsdb_plan.errors import PlanError
from dsdb_plan.migrate.sample import HASH_RANGE, row_hash
from dsdb_plan.migrate.subset import count_rows, select_tables
from dsdb_plan.models import MigrationTable, Sample
from tests.helpers import EVERY_DATABASE, database, make_flights_db, run_cli

MANIFEST = """\
version: 1
connections:
  local: {driver: sqlite, database: local.db}
  stage: {driver: sqlite, database: stage.db}
migrations:
  sampled:
    from: local
    to: stage
    follow: parents
    tables:
      flights:
        sample: SAMPLE
"""


def sampled_ids(ids: range, percent: float, seed: int | str = 0) -> list[int]:
    """The ids a percentage sample keeps, by the hash computed here in Python."""
    bound = int(HASH_RANGE * percent / 100)
    return [i for i in ids if (sqlfunctions.stable_hash(f"{seed}|{i}") or 0) < bound]


def ids(path: Path, table: str = "flights") -> list[int]:
    with sqlite3.connect(path) as db:
        return sorted(row[0] for row in db.execute(f"SELECT id FROM {table}"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    make_flights_db(tmp_path / "local.db", flights=1000)
    return tmp_path


def write(project: Path, sample: str) -> Path:
    manifest = project / "dsdb.yaml"
    manifest.write_text(MANIFEST.replace("SAMPLE", sample))
    return manifest


@pytest.mark.parametrize("kind", EVERY_DATABASE)
def test_every_engine_computes_the_same_hash(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    engine = database(request, tmp_path, kind)
    sa.event.listen(engine, "connect", sqlfunctions.install)
    table = sa.table("t", sa.column("k"), sa.column("n"))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (k VARCHAR(20), n INTEGER)"))
        conn.execute(
            sa.text("INSERT INTO t VALUES (:k, :n)"),
            [{"k": "N1", "n": 1}, {"k": "é ü", "n": -7}, {"k": "", "n": 123456789}],
        )
        got = conn.execute(
            sa.select(table.c.k, table.c.n, row_hash(table, ["k", "n"], "s")).order_by(table.c.n)
        ).all()
    engine.dispose()
    assert [tuple(row) for row in got] == [
        (k, n, sqlfunctions.stable_hash(f"s|{k}|{n}"))
        for k, n in (("é ü", -7), ("N1", 1), ("", 123456789))
    ]


def test_a_percentage_sample_is_the_same_rows_every_apply_and_grows_only_by_its_share(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(project, "{percent: 10, seed: 7}")
    applied = run_cli(capsys, "apply", manifest, "--auto-approve", "--no-color")
    assert applied.code == 0, applied.text
    first = ids(project / "stage.db")
    assert first == sampled_ids(range(1, 1001), 10, 7)
    assert 60 < len(first) < 140
    again = run_cli(capsys, "plan", manifest, "--detailed-exitcode", "--no-color")
    assert again.code == 0, again.text
    with sqlite3.connect(project / "local.db") as db:
        db.executemany(
            "INSERT INTO flights VALUES (?, 'UA', 1, 1.0)", [(i,) for i in range(1001, 2001)]
        )
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    grown = ids(project / "stage.db")
    assert grown[: len(first)] == first
    assert grown == sampled_ids(range(1, 2001), 10, 7)
    # follow: parents brought the airlines of the sampled flights, and only those.
    with sqlite3.connect(project / "stage.db") as db:
        used = {row[0] for row in db.execute("SELECT DISTINCT carrier FROM flights")}
        held = {row[0] for row in db.execute("SELECT carrier FROM airlines")}
    assert held == used


def test_another_seed_draws_another_sample(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(project, "{percent: 10, seed: other}")
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    assert ids(project / "stage.db") == sampled_ids(range(1, 1001), 10, "other")
    assert ids(project / "stage.db") != sampled_ids(range(1, 1001), 10, 7)


def test_a_row_count_sample_takes_the_lowest_hashes_among_the_filtered_rows(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = project / "dsdb.yaml"
    manifest.write_text(
        MANIFEST.replace("sample: SAMPLE", "where: {carrier: UA}\n        sample: {rows: 25}")
    )
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    ua = [i for i in range(1, 1001) if i % 3 == 0]  # make_flights_db: UA when i % 3 == 0
    lowest = sorted(ua, key=lambda i: (sqlfunctions.stable_hash(f"0|{i}"), i))[:25]
    assert ids(project / "stage.db") == sorted(lowest)
    assert run_cli(capsys, "plan", manifest, "--detailed-exitcode").code == 0


@pytest.mark.parametrize("kind", EVERY_DATABASE)
def test_the_servers_sample_the_rows_sqlite_samples(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    engine = database(request, tmp_path, kind)
    sa.event.listen(engine, "connect", sqlfunctions.install)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE items (id INTEGER PRIMARY KEY, tag VARCHAR(5))"))
        conn.execute(
            sa.text("INSERT INTO items VALUES (:id, :tag)"),
            [{"id": i, "tag": "ab"[i % 2]} for i in range(1, 501)],
        )
    options = {"items": MigrationTable(where={"tag": "a"}, sample=Sample(rows=20, seed=3))}
    (selection,) = select_tables(engine, options, "none")
    with engine.connect() as conn:
        chosen = sorted(
            row[0] for row in conn.execute(sa.select(selection.source.c.id).where(selection.where))
        )
        assert count_rows(conn, selection) == 20
    engine.dispose()
    evens = [i for i in range(1, 501) if i % 2 == 0]
    assert chosen == sorted(
        sorted(evens, key=lambda i: (sqlfunctions.stable_hash(f"3|{i}"), i))[:20]
    )


def test_a_sample_needs_a_key(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'k.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE loose (a INTEGER)"))
    with pytest.raises(PlanError, match="table 'loose': sample needs a key to choose rows by"):
        select_tables(engine, {"loose": MigrationTable(sample=Sample(percent=5))}, "none")
