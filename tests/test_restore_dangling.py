"""Restoring a backup whose rows break its declared foreign keys, into every database.

SQLite does not enforce its keys, so its backup can hold flights whose carrier is in no
airline row. The restore's plan counts them from the backup's files and, by its
`on_dangling`, refuses (nothing written), skips them and the rows pointing at them, or
keeps them without that key; the target never holds a key its rows break, and a second
plan has nothing to do.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan.dbschema import reflect_foreign_keys, reflect_tables
from tests.helpers import EVERY_DATABASE, fill, run_cli, sqlite_url, table_names, table_rows

MANIFEST = """\
version: 1
connections:
  local: {{driver: sqlite, database: data/local.db}}
  target: {{url: '{url}'}}
backups:
  nightly: {{connection: local}}
restores:
  back: {{backup: nightly, to: target{options}}}
"""

#: Flights 1..30 cycle through carriers UA, AA and ZZ (no such airline); 31 has none.
#: Each flight has a leg; legs point at flights, never at a missing one.
_DANGLING_FLIGHTS = 10


def _make_source(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE airlines (carrier TEXT PRIMARY KEY, name TEXT NOT NULL);
            CREATE TABLE flights (
                id INTEGER PRIMARY KEY,
                carrier TEXT REFERENCES airlines(carrier),
                delay REAL
            );
            CREATE TABLE legs (
                id INTEGER PRIMARY KEY,
                flight_id INTEGER NOT NULL REFERENCES flights(id),
                seq INTEGER NOT NULL
            );
            """
        )
        db.executemany("INSERT INTO airlines VALUES (?, ?)", [("UA", "United"), ("AA", "American")])
        carriers = [("UA", "AA", "ZZ")[i % 3] for i in range(30)] + [None]
        db.executemany(
            "INSERT INTO flights VALUES (?, ?, ?)",
            [(i + 1, carrier, i * 0.5) for i, carrier in enumerate(carriers)],
        )
        db.executemany("INSERT INTO legs VALUES (?, ?, ?)", [(i, i, 1) for i in range(1, 32)])


def _source_rows(project: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(project.parent / "data/local.db") as db:
        return sorted((tuple(row) for row in db.execute(query)), key=repr)


def _target_url(request: pytest.FixtureRequest, kind: str, folder: Path) -> str:
    if kind == "sqlite":
        return sqlite_url(folder / "data/restored.db")
    if kind == "duckdb":
        return f"duckdb+dsdb:///{folder / 'data/restored.duckdb'}"
    server = request.getfixturevalue("postgres_db" if kind == "postgresql" else "mariadb_db")
    return str(server.url.render_as_string(hide_password=False))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    _make_source(tmp_path / "data/local.db")
    path = tmp_path / "dsdb.yaml"
    path.write_text(MANIFEST.format(url="sqlite:///unused.db", options=""))
    return path


def _with_policy(project: Path, url: str, policy: str | None) -> None:
    options = "" if policy is None else f", on_dangling: {policy}"
    project.write_text(MANIFEST.format(url=url, options=options))


def _keys(url: str, table: str) -> list[tuple[tuple[str, ...], str]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return sorted((fk.columns, fk.ref_table) for fk in reflect_foreign_keys(conn, table))
    finally:
        engine.dispose()


def _take_backup(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    """The backup alone first, so that the restore's plan knows it (and counts)."""
    result = run_cli(capsys, "apply", project, "--auto-approve", "--target", "backup.nightly")
    assert result.code == 0, result.text


@pytest.mark.parametrize("kind", EVERY_DATABASE)
def test_the_plan_refuses_dangling_references_and_nothing_is_written(
    capsys: pytest.CaptureFixture[str], project: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    url = _target_url(request, kind, project.parent)
    _with_policy(project, url, None)
    _take_backup(capsys, project)
    plan = run_cli(capsys, "plan", project)
    assert plan.code == 1, plan.text
    assert "Traceback" not in plan.text
    assert (
        f"flights.carrier → airlines.carrier: {_DANGLING_FLIGHTS} rows point at no copied "
        "airlines row (e.g. 'ZZ')" in plan.err
    )
    assert "on_dangling: skip" in plan.err and "on_dangling: keep" in plan.err
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 1
    assert table_names(url) == []


@pytest.mark.parametrize("kind", EVERY_DATABASE)
def test_skip_leaves_out_the_dangling_rows_and_those_pointing_at_them(
    capsys: pytest.CaptureFixture[str], project: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    url = _target_url(request, kind, project.parent)
    _with_policy(project, url, "skip")
    _take_backup(capsys, project)
    plan = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert plan.code == 2, plan.text
    assert f"skips flights.carrier → airlines.carrier: {_DANGLING_FLIGHTS} rows" in plan.out
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0

    kept_flights = (
        "SELECT * FROM flights WHERE carrier IS NULL OR carrier IN (SELECT carrier FROM airlines)"
    )
    assert table_rows(url, "flights") == _source_rows(project, kept_flights)
    assert table_rows(url, "legs") == _source_rows(
        project, f"SELECT * FROM legs WHERE flight_id IN (SELECT id FROM ({kept_flights}))"
    )
    assert table_rows(url, "airlines") == _source_rows(project, "SELECT * FROM airlines")
    assert _keys(url, "flights") == [(("carrier",), "airlines")]
    assert _keys(url, "legs") == [(("flight_id",), "flights")]
    again = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert again.code == 0, again.text


@pytest.mark.parametrize("kind", EVERY_DATABASE)
def test_keep_restores_every_row_without_the_broken_key(
    capsys: pytest.CaptureFixture[str], project: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    url = _target_url(request, kind, project.parent)
    _with_policy(project, url, "keep")
    _take_backup(capsys, project)
    plan = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert plan.code == 2, plan.text
    assert "that foreign key is left out of the target" in plan.out
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0

    for table in ("airlines", "flights", "legs"):
        assert table_rows(url, table) == _source_rows(project, f"SELECT * FROM {table}")
    assert _keys(url, "flights") == []
    assert _keys(url, "legs") == [(("flight_id",), "flights")]
    again = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert again.code == 0, again.text


def test_a_backup_taken_in_the_same_apply_is_refused_before_the_restore_writes(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    url = sqlite_url(project.parent / "data/restored.db")
    _with_policy(project, url, None)
    result = run_cli(capsys, "apply", project, "--auto-approve")
    assert result.code == 1, result.text
    assert "Traceback" not in result.text
    assert f"flights.carrier → airlines.carrier: {_DANGLING_FLIGHTS} rows" in result.err
    assert table_names(url) == []
    # With a policy, the next apply restores the backup that one took.
    _with_policy(project, url, "skip")
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    assert len(table_rows(url, "flights")) == 31 - _DANGLING_FLIGHTS


@pytest.mark.parametrize("kind", EVERY_DATABASE)
def test_rows_breaking_a_key_to_a_target_table_not_restored_are_refused_every_time(
    capsys: pytest.CaptureFixture[str], project: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    url = _target_url(request, kind, project.parent)
    source = sa.create_engine(sqlite_url(project.parent / "data/local.db"))
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        # The target's own airlines, typed as a restore types them, lacking carrier ZZ.
        fill(engine, reflect_tables(source, ["airlines"])[0], [("UA", "United"), ("AA", "x")])
    finally:
        engine.dispose()
        source.dispose()
    project.write_text(MANIFEST.format(url=url, options=", tables: [flights]"))
    _take_backup(capsys, project)
    for _ in range(2):  # a resume meets the same rows, and says so again
        applied = run_cli(capsys, "apply", project, "--auto-approve")
        assert applied.code == 1, applied.text
        assert "Traceback" not in applied.text
        if kind != "duckdb":  # DuckDB checks the key inline, as rows load
            assert (
                f"table 'flights': {_DANGLING_FLIGHTS} rows point at no row of target table "
                "'airlines' through foreign key carrier" in applied.err
            )
        names = table_names(url)
        assert "flights" not in names or table_rows(url, "flights") == []
