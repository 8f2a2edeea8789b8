"""Rows a migration would copy, in the plan: counted exactly while that is cheap, estimated by
PostgreSQL's and MariaDB's planners for large filtered tables, and marked so in text and JSON.

The threshold is lowered so that a 24,000-row table counts as large.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan.engines.mysql import ENGINE as MYSQL
from dsdb_plan.engines.postgresql import ENGINE as POSTGRESQL
from dsdb_plan.migrate import estimate
from tests.helpers import make_flights_db, run_cli, sqlite_url

ROWS = 24_000
#: carrier cycles UA, AA, DL and month 1..12 with the id, so one row in twelve matches
UA_WINTER = "{where: {carrier: UA, month: {in: [1, 2]}}}"
MATCHING = ROWS // 12
SERVERS = [
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]

MANIFEST = """\
version: 1
connections:
  source: {{url: '{source}'}}
  local: {{driver: sqlite, database: data/local.db}}
migrations:
  flights-to-local:
    from: source
    to: local
    mode: upsert
    tables:
      flights: {table}
"""


def _fill_flights(engine: sa.Engine) -> None:
    """ROWS flights, an index on month, and fresh planner statistics."""
    metadata = sa.MetaData()
    flights = sa.Table(
        "flights",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("carrier", sa.String(40), nullable=False),
        sa.Column("month", sa.Integer, nullable=False, index=True),
    )
    metadata.create_all(engine)
    rows = [
        {"id": i, "carrier": ("UA", "AA", "DL")[i % 3], "month": 1 + i % 12}
        for i in range(1, ROWS + 1)
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(flights), rows)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE flights")
        else:  # MariaDB estimates unindexed conditions from these statistics only
            conn.exec_driver_sql("ANALYZE TABLE flights PERSISTENT FOR ALL")
        conn.commit()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> str:
    """The URL of the server database of the test's kind, holding ROWS flights."""
    database = request.getfixturevalue(f"{request.param}_db")
    engine = database.engine()
    _fill_flights(engine)
    engine.dispose()
    return str(database.url_string)


def _plan(capsys: pytest.CaptureFixture[str], manifest: Path) -> tuple[str, dict[str, Any]]:
    """The plan as text, and the migration's rows per table and the tables whose rows the
    database estimated, from the JSON plan's payload."""
    text = run_cli(capsys, "plan", manifest)
    assert text.code == 0, text.text
    document = run_cli(capsys, "plan", manifest, "--format", "json")
    assert document.code == 0, document.text
    (action,) = json.loads(document.out)["actions"]
    tables = action["payload"]["tables"]
    return text.out, {
        "rows": {table["table"]: table["rows"] for table in tables},
        "rows_estimated": [table["table"] for table in tables if table["estimated"]],
    }


def _table_rows(url: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM flights").scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("server", SERVERS, indirect=True)
def test_a_large_filtered_table_is_estimated_by_the_database_and_marked(
    capsys: pytest.CaptureFixture[str],
    write_manifest,
    monkeypatch: pytest.MonkeyPatch,
    server: str,
) -> None:
    monkeypatch.setattr(estimate, "EXACT_UP_TO", 1_000)
    manifest = write_manifest(MANIFEST.format(source=server, table=UA_WINTER))
    text, details = _plan(capsys, manifest)
    line = re.search(
        r"flights → local\.flights: ~([\d,]+) rows, estimated \(upsert, new table\)", text
    )
    assert line, text
    rows = int(line[1].replace(",", ""))
    assert MATCHING / 2 <= rows <= MATCHING * 2, rows
    assert details["rows"] == {"flights": rows}
    assert details["rows_estimated"] == ["flights"]


@pytest.mark.parametrize("server", SERVERS, indirect=True)
def test_a_filtered_table_up_to_the_threshold_is_counted_exactly(
    capsys: pytest.CaptureFixture[str], write_manifest, server: str
) -> None:
    manifest = write_manifest(MANIFEST.format(source=server, table=UA_WINTER))
    text, details = _plan(capsys, manifest)
    assert f"flights → local.flights: {MATCHING:,} rows (upsert, new table)" in text
    assert "estimated" not in text
    assert details["rows"] == {"flights": MATCHING}
    assert details["rows_estimated"] == []


@pytest.mark.parametrize("server", SERVERS, indirect=True)
def test_an_unfiltered_table_shows_its_exact_row_count(
    capsys: pytest.CaptureFixture[str],
    write_manifest,
    monkeypatch: pytest.MonkeyPatch,
    server: str,
) -> None:
    monkeypatch.setattr(estimate, "EXACT_UP_TO", 0)
    manifest = write_manifest(MANIFEST.format(source=server, table="{}"))
    text, details = _plan(capsys, manifest)
    assert f"flights → local.flights: {ROWS:,} rows (upsert, new table)" in text
    assert details["rows_estimated"] == []


def test_sqlite_has_no_estimator_and_is_always_counted_exactly(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(estimate, "EXACT_UP_TO", 0)
    make_flights_db(tmp_path / "data/source.db", flights=600)
    source = sqlite_url(tmp_path / "data/source.db")
    manifest = write_manifest(MANIFEST.format(source=source, table=UA_WINTER))
    text, details = _plan(capsys, manifest)
    assert "flights → local.flights: 50 rows (upsert, new table;" in text
    assert details["rows"] == {"flights": 50}
    assert details["rows_estimated"] == []


@pytest.mark.parametrize("server", SERVERS, indirect=True)
def test_a_hostile_filter_value_is_only_a_value_to_explain(
    capsys: pytest.CaptureFixture[str],
    write_manifest,
    monkeypatch: pytest.MonkeyPatch,
    server: str,
) -> None:
    monkeypatch.setattr(estimate, "EXACT_UP_TO", 1_000)
    hostile = '{where: {carrier: "x\'; DROP TABLE flights; --"}}'
    manifest = write_manifest(MANIFEST.format(source=server, table=hostile))
    text, details = _plan(capsys, manifest)
    assert re.search(r"flights → local\.flights: ~[\d,]+ rows?, estimated", text), text
    assert details["rows_estimated"] == ["flights"]
    assert _table_rows(server) == ROWS


@pytest.mark.parametrize("server", SERVERS, indirect=True)
def test_an_explain_that_fails_falls_back_to_the_exact_count(
    capsys: pytest.CaptureFixture[str],
    write_manifest,
    monkeypatch: pytest.MonkeyPatch,
    server: str,
) -> None:
    monkeypatch.setattr(estimate, "EXACT_UP_TO", 1_000)
    for engine in (POSTGRESQL, MYSQL):
        monkeypatch.setattr(type(engine), "explain_prefix", lambda self, _: "EXPLAIN NONSENSE")
    manifest = write_manifest(MANIFEST.format(source=server, table=UA_WINTER))
    text, details = _plan(capsys, manifest)
    assert f"flights → local.flights: {MATCHING:,} rows (upsert, new table)" in text
    assert details["rows_estimated"] == []


@pytest.mark.mariadb
@pytest.mark.parametrize("server", ["mariadb"], indirect=True)
def test_an_explain_without_a_row_estimate_falls_back_to_the_exact_count(
    capsys: pytest.CaptureFixture[str],
    write_manifest,
    monkeypatch: pytest.MonkeyPatch,
    server: str,
) -> None:
    monkeypatch.setattr(estimate, "EXACT_UP_TO", 1_000)
    # MariaDB explains a condition that can never hold as "Impossible WHERE", with no rows
    manifest = write_manifest(MANIFEST.format(source=server, table="{sql_where: '1 = 0'}"))
    text, details = _plan(capsys, manifest)
    assert "flights → local.flights: 0 rows (upsert, new table)" in text
    assert details["rows_estimated"] == []


@pytest.mark.postgres
@pytest.mark.parametrize("server", ["postgres"], indirect=True)
@pytest.mark.parametrize(("planned", "shown"), [(1e12, ROWS), (-5.0, 0)])
def test_an_estimate_stays_between_none_and_every_row_of_the_table(
    capsys: pytest.CaptureFixture[str],
    write_manifest,
    monkeypatch: pytest.MonkeyPatch,
    server: str,
    planned: float,
    shown: int,
) -> None:
    monkeypatch.setattr(estimate, "EXACT_UP_TO", 1_000)
    monkeypatch.setattr(type(POSTGRESQL), "explained_rows", lambda self, _: planned)
    manifest = write_manifest(MANIFEST.format(source=server, table=UA_WINTER))
    text, details = _plan(capsys, manifest)
    assert f"flights → local.flights: ~{shown:,} rows, estimated" in text
    assert details["rows"] == {"flights": shown}
