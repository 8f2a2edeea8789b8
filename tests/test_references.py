"""References declared in the manifest (virtual foreign keys): read, checked, followed like
declared ones, and created in the target as real foreign keys."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from dsdb_plan.dbschema import ForeignKeySchema
from dsdb_plan.references import parse_reference, reference_label
from tests.helpers import run_cli
from tests.servers import ServerDatabase

#: A source as pandas `to_sql` writes it: no primary key, no foreign key, no index.
UNDECLARED = """
CREATE TABLE planes (tailnum TEXT, seats INTEGER);
CREATE TABLE airports (faa TEXT, name TEXT);
CREATE TABLE flights (id INTEGER, carrier TEXT, tailnum TEXT, dest TEXT);
INSERT INTO planes VALUES ('N1', 100), ('N2', 150), ('N3', 200), ('N4', 50);
INSERT INTO airports VALUES ('ORD', 'Chicago'), ('DEN', 'Denver'), ('LAX', 'Los Angeles');
INSERT INTO flights VALUES
  (1, 'UA', 'N1', 'ORD'), (2, 'UA', 'N2', 'DEN'), (3, 'AA', 'N3', 'LAX'),
  (4, 'UA', NULL, 'ORD'), (5, 'AA', 'N4', 'DEN');
"""

MANIFEST = """\
version: 1
connections:
  local:
    driver: sqlite
    database: local.db
    references: {flights.tailnum: planes.tailnum, flights.dest: airports.faa}
  stage: {driver: sqlite, database: stage.db}
migrations:
  ua:
    from: local
    to: stage
    follow: parents
    tables:
      flights: {where: {carrier: UA}, key: [id]}
"""


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute(sql).fetchall())


@pytest.fixture
def undeclared(tmp_path: Path) -> Path:
    with sqlite3.connect(tmp_path / "local.db") as db:
        db.executescript(UNDECLARED)
    return tmp_path


def test_a_reference_reads_one_column_or_several_in_parentheses() -> None:
    assert parse_reference("flights.tailnum", "planes.tailnum") == (
        "flights",
        ForeignKeySchema(None, ("tailnum",), "planes", ("tailnum",)),
    )
    table, fk = parse_reference("legs.(flight_id, leg)", "hops.( flight_id , n )")
    assert (table, fk.columns, fk.ref_table, fk.ref_columns) == (
        "legs",
        ("flight_id", "leg"),
        "hops",
        ("flight_id", "n"),
    )
    assert reference_label(table, fk) == "legs.(flight_id, leg) → hops.(flight_id, n)"


@pytest.mark.parametrize(
    ("child", "parent", "message"),
    [
        ("flights", "planes.tailnum", "'flights' is not table.column or table.(column, column)"),
        ("a.(x, y)", "b.x", "a.(x, y): b.x pairs 2 column(s) with 1"),
        ("a.(x, )", "b.(x, y)", "'a.(x, )' names an empty column"),
    ],
)
def test_a_malformed_reference_is_refused_saying_why(child: str, parent: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_reference(child, parent)


def test_a_malformed_reference_is_a_manifest_error_at_its_line(
    undeclared: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = undeclared / "dsdb.yaml"
    manifest.write_text(MANIFEST.replace("flights.dest: airports.faa", "flights: airports.faa"))
    result = run_cli(capsys, "validate", manifest)
    assert result.code == 1
    assert "connections.local.references" in result.text
    assert "'flights' is not table.column or table.(column, column)" in result.text


def test_follow_parents_brings_exactly_the_referenced_rows_and_real_foreign_keys(
    undeclared: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = undeclared / "dsdb.yaml"
    manifest.write_text(MANIFEST)
    plan = run_cli(capsys, "plan", manifest, "--no-color")
    assert plan.code == 0, plan.text
    assert "foreign key flights.tailnum -> planes.tailnum from references" in plan.text
    assert "parent of flights via flights.tailnum" in plan.text
    applied = run_cli(capsys, "apply", manifest, "--auto-approve", "--no-color")
    assert applied.code == 0, applied.text
    stage = undeclared / "stage.db"
    assert rows(stage, "SELECT * FROM flights") == [
        (1, "UA", "N1", "ORD"),
        (2, "UA", "N2", "DEN"),
        (4, "UA", None, "ORD"),
    ]
    assert rows(stage, "SELECT * FROM planes") == [("N1", 100), ("N2", 150)]
    assert rows(stage, "SELECT * FROM airports") == [("DEN", "Denver"), ("ORD", "Chicago")]
    keys = rows(stage, 'SELECT "table", "from", "to" FROM pragma_foreign_key_list(\'flights\')')
    assert keys == [("airports", "dest", "faa"), ("planes", "tailnum", "tailnum")]
    # The parents without a primary key got the referenced columns as theirs.
    with sqlite3.connect(stage) as db:
        db.execute("PRAGMA foreign_keys = ON")
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("INSERT INTO flights VALUES (9, 'UA', 'N9', 'ORD')")
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("INSERT INTO planes VALUES ('N1', 1)")
    again = run_cli(capsys, "plan", manifest, "--no-color", "--detailed-exitcode")
    assert again.code == 0, again.text


def test_references_of_the_migration_add_to_the_connections(
    undeclared: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = undeclared / "dsdb.yaml"
    text = MANIFEST.replace(", flights.dest: airports.faa", "")
    manifest.write_text(text + "    references: {flights.dest: airports.faa}\n")
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    assert rows(undeclared / "stage.db", "SELECT faa FROM airports") == [("DEN",), ("ORD",)]


def test_a_reference_to_a_table_or_column_the_source_lacks_fails_the_plan_naming_it(
    undeclared: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = undeclared / "dsdb.yaml"
    manifest.write_text(MANIFEST.replace("planes.tailnum", "plane.tailnum"))
    result = run_cli(capsys, "plan", manifest, "--no-color")
    assert result.code == 1
    assert (
        "references: flights.tailnum -> plane.tailnum: no table 'plane' in the source - "
        "did you mean 'planes'?" in result.text
    )
    manifest.write_text(MANIFEST.replace("airports.faa", "airports.code"))
    result = run_cli(capsys, "plan", manifest, "--no-color")
    assert result.code == 1
    assert "references: flights.dest -> airports.code: table 'airports' has no column 'code'" in (
        result.text
    )


def test_a_reference_to_repeated_values_is_followed_but_not_created_and_the_plan_says_so(
    undeclared: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(undeclared / "local.db") as db:
        db.execute("INSERT INTO airports VALUES ('ORD', 'O''Hare')")
    manifest = undeclared / "dsdb.yaml"
    # Without a key to match its rows by, airports is replaced on every apply.
    manifest.write_text(MANIFEST.replace("follow: parents", "follow: parents\n    mode: replace"))
    plan = run_cli(capsys, "plan", manifest, "--no-color")
    assert (
        "foreign key flights.dest -> airports.faa followed, not created in the target: "
        "airports.faa holds repeated values" in plan.text
    )
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    stage = undeclared / "stage.db"
    assert rows(stage, "SELECT * FROM airports") == [
        ("DEN", "Denver"),
        ("ORD", "Chicago"),
        ("ORD", "O'Hare"),
    ]
    keys = rows(stage, "SELECT \"table\" FROM pragma_foreign_key_list('flights')")
    assert keys == [("planes",)]


def test_follow_without_any_foreign_key_says_so_in_the_plan(
    undeclared: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = undeclared / "dsdb.yaml"
    manifest.write_text(
        MANIFEST.replace(
            "    references: {flights.tailnum: planes.tailnum, flights.dest: airports.faa}\n", ""
        )
    )
    plan = run_cli(capsys, "plan", manifest, "--no-color")
    assert plan.code == 0, plan.text
    assert (
        "follow: parents found no foreign key between the tables; declare them under "
        "references: (`dsdb references suggest` lists likely ones)" in plan.text
    )


@pytest.mark.parametrize("server", ["postgres_db", "mariadb_db"])
def test_the_servers_hold_references_as_real_foreign_keys(
    undeclared: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
    server: str,
) -> None:
    target: ServerDatabase = request.getfixturevalue(server)
    manifest = undeclared / "dsdb.yaml"
    text = MANIFEST.replace(
        "{driver: sqlite, database: stage.db}", f'{{url: "{target.url_string}"}}'
    )
    manifest.write_text(text)
    applied = run_cli(capsys, "apply", manifest, "--auto-approve", "--no-color")
    assert applied.code == 0, applied.text
    engine = target.engine()
    try:
        keys = sa.inspect(engine).get_foreign_keys("flights")
        assert sorted((k["referred_table"], tuple(k["constrained_columns"])) for k in keys) == [
            ("airports", ("dest",)),
            ("planes", ("tailnum",)),
        ]
        with engine.connect() as conn:
            planes = conn.execute(sa.text("SELECT tailnum FROM planes ORDER BY 1")).all()
        assert [tuple(row) for row in planes] == [("N1",), ("N2",)]
    finally:
        engine.dispose()


def test_the_plan_counts_references_that_would_dangle_and_skip_leaves_them_out(
    undeclared: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(undeclared / "local.db") as db:
        db.execute("INSERT INTO flights VALUES (6, 'UA', 'N404', 'ORD')")
    manifest = undeclared / "dsdb.yaml"
    manifest.write_text(MANIFEST)
    refused = run_cli(capsys, "plan", manifest, "--no-color")
    assert refused.code == 1
    assert (
        "flights.tailnum -> planes.tailnum: 1 row points at no copied planes row (e.g. 'N404')"
        in refused.text
    )
    manifest.write_text(
        MANIFEST.replace("follow: parents", "follow: parents\n    on_dangling: skip")
    )
    applied = run_cli(capsys, "apply", manifest, "--auto-approve", "--no-color")
    assert applied.code == 0, applied.text
    assert rows(undeclared / "stage.db", "SELECT id FROM flights") == [(1,), (2,), (4,)]


def test_a_composite_reference_is_followed_and_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(tmp_path / "local.db") as db:
        db.executescript(
            """
            CREATE TABLE seats (plane TEXT, seat TEXT, kind TEXT);
            CREATE TABLE tickets (id INTEGER PRIMARY KEY, plane TEXT, seat TEXT);
            INSERT INTO seats VALUES ('N1', '1A', 'window'), ('N1', '1B', 'aisle'),
                                     ('N2', '1A', 'window');
            INSERT INTO tickets VALUES (1, 'N1', '1B'), (2, 'N2', '1A'), (3, 'N1', '1A');
            """
        )
    manifest = tmp_path / "dsdb.yaml"
    manifest.write_text(
        "version: 1\nconnections:\n"
        "  local: {driver: sqlite, database: local.db}\n"
        "  stage: {driver: sqlite, database: stage.db}\n"
        "migrations:\n  t:\n    from: local\n    to: stage\n    follow: parents\n"
        "    references:\n      tickets.(plane, seat): seats.(plane, seat)\n"
        "    tables: {tickets: {where: {id: [1, 2]}}}\n"
    )
    applied = run_cli(capsys, "apply", manifest, "--auto-approve", "--no-color")
    assert applied.code == 0, applied.text
    assert "foreign key tickets.(plane, seat) -> seats.(plane, seat) from references" in (
        applied.text
    )
    stage = tmp_path / "stage.db"
    assert rows(stage, "SELECT * FROM seats") == [("N1", "1B", "aisle"), ("N2", "1A", "window")]
    keys = rows(stage, 'SELECT "table", "from", "to" FROM pragma_foreign_key_list(\'tickets\')')
    assert keys == [("seats", "plane", "plane"), ("seats", "seat", "seat")]


@pytest.mark.parametrize("mode", ["upsert", "replace"])
@pytest.mark.parametrize("server", ["postgres_db", "mariadb_db"])
def test_a_reference_to_unique_text_of_a_parent_with_its_own_key_is_created_on_servers(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
    server: str,
    mode: str,
) -> None:
    target: ServerDatabase = request.getfixturevalue(server)
    with sqlite3.connect(tmp_path / "local.db") as db:
        db.executescript(
            UNDECLARED.replace(
                "CREATE TABLE planes (tailnum TEXT, seats INTEGER);",
                "CREATE TABLE planes (id INTEGER PRIMARY KEY, tailnum TEXT, seats INTEGER);",
            ).replace(
                "INSERT INTO planes VALUES ('N1', 100), ('N2', 150), ('N3', 200), ('N4', 50);",
                "INSERT INTO planes VALUES (1, 'N1', 100), (2, 'N2', 150), (3, 'N3', 200),"
                " (4, 'N4', 50);",
            )
        )
    manifest = tmp_path / "dsdb.yaml"
    manifest.write_text(
        MANIFEST.replace(
            "{driver: sqlite, database: stage.db}", f'{{url: "{target.url_string}"}}'
        ).replace("follow: parents", f"follow: parents\n    mode: {mode}")
    )
    for _ in range(2):  # the second apply replaces tables that exist
        applied = run_cli(
            capsys, "apply", manifest, "--auto-approve", "--allow-destroy", "--no-color"
        )
        assert applied.code == 0, applied.text
        with sqlite3.connect(tmp_path / "local.db") as db:
            db.execute("UPDATE planes SET seats = seats + 1")
    engine = target.engine()
    try:
        keys = sa.inspect(engine).get_foreign_keys("flights")
        assert ("planes", ("tailnum",)) in {
            (k["referred_table"], tuple(k["constrained_columns"])) for k in keys
        }
        with engine.connect() as conn:
            planes = conn.execute(sa.text("SELECT id, tailnum, seats FROM planes")).all()
        assert sorted(tuple(row) for row in planes) == [(1, "N1", 101), (2, "N2", 151)]
    finally:
        engine.dispose()
