"""Dangling references in a migration's subset: counted by the source, and refused, skipped
or kept as the migration's `on_dangling` says, without a target left half-written."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from dsdb_plan.dbschema import ForeignKeySchema
from dsdb_plan.kinds import migration as migration_kind
from dsdb_plan.kinds.migration import data_digest, migration_document
from dsdb_plan.manifest import parse_manifest
from dsdb_plan.migrate.integrity import (
    count_dangling,
    resolved_only,
    without_keys,
)
from dsdb_plan.migrate.mask import Masker
from dsdb_plan.migrate.subset import TableSelection, select_subset, select_tables
from dsdb_plan.models import MigrationTable
from dsdb_plan.payloads import Dangling
from dsdb_plan.project import Project
from tests.helpers import (
    EVERY_DATABASE,
    database,
    run_cli,
    sqlite_url,
    table_names,
    table_rows,
)

#: Flights whose plane is unknown (N404, N500 twice), one without a plane, and one whose
#: plane exists but is not in the subset... of nothing: planes are copied whole.
DIRTY_FLIGHTS = """
CREATE TABLE airlines (carrier TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE planes (tailnum TEXT PRIMARY KEY, seats INTEGER);
CREATE TABLE flights (
    id INTEGER PRIMARY KEY,
    carrier TEXT NOT NULL REFERENCES airlines(carrier),
    tailnum TEXT REFERENCES planes(tailnum),
    month INTEGER NOT NULL
);
INSERT INTO airlines VALUES ('UA', 'United'), ('AA', 'American');
INSERT INTO planes VALUES ('N1', 100), ('N2', 150), ('N3', 200);
INSERT INTO flights VALUES
    (1, 'UA', 'N1', 1), (2, 'UA', 'N404', 1), (3, 'UA', NULL, 2), (4, 'UA', 'N500', 2),
    (5, 'UA', 'N500', 3), (6, 'UA', 'N2', 3), (7, 'AA', 'N999', 1), (8, 'AA', 'N3', 1);
"""

UA_FLIGHTS = "flights:\n        where: {carrier: UA}\n"


def dirty_source(path: Path, script: str = DIRTY_FLIGHTS) -> sa.Engine:
    with sqlite3.connect(path) as db:
        db.executescript(script)
    return sa.create_engine(sqlite_url(path))


def ua_flights(engine: sa.Engine) -> list[TableSelection]:
    options = {"flights": MigrationTable(where={"carrier": "UA"})}
    return select_tables(engine, options, "parents")


def selected(engine: sa.Engine, selection: TableSelection) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return sorted(tuple(row) for row in conn.execute(select_subset(selection)))


# -- decisions, on a SQLite source --------------------------------------------------------


def test_dangling_rows_are_counted_per_key_with_a_few_values_and_nulls_left_alone(
    tmp_path: Path,
) -> None:
    engine = dirty_source(tmp_path / "source.db")
    with engine.connect() as conn:
        dangling = count_dangling(conn, ua_flights(engine), examples=1)
    # Flight 7 (AA) is outside the subset and flight 3's NULL tailnum points nowhere.
    assert dangling == [
        Dangling("flights", ("tailnum",), "planes", ("tailnum",), 3, ("'N404'",), more=True)
    ]
    assert dangling[0].describe() == (
        "flights.tailnum → planes.tailnum: 3 rows point at no copied planes row (e.g. 'N404', …)"
    )


def test_dangling_values_of_a_masked_key_are_counted_but_never_shown(tmp_path: Path) -> None:
    engine = dirty_source(tmp_path / "source.db")
    options = {"flights": MigrationTable(where={"carrier": "UA"})}
    chosen = select_tables(
        engine, options, "parents", mask={"tailnum": "hash"}, masker=Masker("seed")
    )
    with engine.connect() as conn:
        (dangling,) = count_dangling(conn, chosen)
    # The plan, its file and the output must not hold an original value of a masked column.
    assert (dangling.rows, dangling.examples) == (3, ())
    assert dangling.describe() == (
        "flights.tailnum → planes.tailnum: 3 rows point at no copied planes row "
        "(values not shown: flights.tailnum is masked)"
    )


def test_a_parent_row_the_subset_leaves_out_is_dangling_too(tmp_path: Path) -> None:
    engine = dirty_source(tmp_path / "source.db")
    options = {
        "flights": MigrationTable(where={"carrier": "UA"}),
        "planes": MigrationTable(where={"seats": {"gt": 120}}),
        "airlines": MigrationTable(),
    }
    with engine.connect() as conn:
        (dangling,) = count_dangling(conn, select_tables(engine, options, "none"))
    assert (dangling.rows, dangling.examples) == (4, ("'N1'", "'N404'", "'N500'"))


def test_composite_keys_dangle_only_when_no_column_is_null(tmp_path: Path) -> None:
    engine = dirty_source(
        tmp_path / "source.db",
        """
        CREATE TABLE seats (plane TEXT, seat TEXT, PRIMARY KEY (plane, seat));
        CREATE TABLE tickets (
            id INTEGER PRIMARY KEY, plane TEXT, seat TEXT,
            FOREIGN KEY (plane, seat) REFERENCES seats (plane, seat)
        );
        INSERT INTO seats VALUES ('N1', '1A'), ('N1', '1B'), ('N2', '1A');
        INSERT INTO tickets VALUES
            (1, 'N1', '1A'), (2, 'N2', '1B'), (3, 'N1', NULL), (4, NULL, '9Z'), (5, 'N9', '1A');
        """,
    )
    chosen = select_tables(engine, None, "none")
    with engine.connect() as conn:
        (dangling,) = count_dangling(conn, chosen)
    assert dangling.key == "tickets.(plane, seat) → seats.(plane, seat)"
    assert (dangling.rows, dangling.examples) == (2, ("('N2', '1B')", "('N9', '1A')"))
    (_, tickets) = resolved_only(chosen, engine.dialect)
    assert [row[0] for row in selected(engine, tickets)] == [1, 3, 4]


def test_skipping_leaves_out_the_rows_pointing_at_skipped_rows_as_well(tmp_path: Path) -> None:
    engine = dirty_source(
        tmp_path / "source.db",
        """
        CREATE TABLE parent (id INTEGER PRIMARY KEY);
        CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));
        CREATE TABLE grandchild (id INTEGER PRIMARY KEY, child_id INTEGER REFERENCES child(id));
        INSERT INTO parent VALUES (1);
        INSERT INTO child VALUES (10, 1), (11, 2), (12, NULL);
        INSERT INTO grandchild VALUES (100, 10), (101, 11), (102, 12), (103, 13);
        """,
    )
    chosen = select_tables(engine, None, "none")
    with engine.connect() as conn:
        # Only direct danglers are counted: child 11 (parent 2) and grandchild 103 (child 13).
        assert [(d.table, d.rows) for d in count_dangling(conn, chosen)] == [
            ("child", 1),
            ("grandchild", 1),
        ]
        kept = resolved_only(chosen, engine.dialect)
        assert count_dangling(conn, kept) == []
    assert [selected(engine, s) for s in kept] == [
        [(1,)],
        [(10, 1), (12, None)],
        [(100, 10), (102, 12)],  # 101 points at the skipped child 11
    ]


def test_skipping_through_a_self_reference_leaves_out_every_row_below_a_skipped_one(
    tmp_path: Path,
) -> None:
    engine = dirty_source(
        tmp_path / "source.db",
        """
        CREATE TABLE staff (id INTEGER PRIMARY KEY, boss INTEGER REFERENCES staff(id));
        INSERT INTO staff VALUES (1, NULL), (2, 1), (3, 99), (4, 3), (5, 4), (6, 7), (7, 6);
        """,
    )
    chosen = select_tables(engine, None, "none")
    with engine.connect() as conn:
        (dangling,) = count_dangling(conn, chosen)
        assert (dangling.rows, dangling.examples) == (1, ("99",))
        kept = resolved_only(chosen, engine.dialect)
        assert count_dangling(conn, kept) == []
    # 3 points nowhere, 4 and 5 below it; 6 and 7 point at each other, which resolves.
    assert selected(engine, kept[0]) == [(1, None), (2, 1), (6, 7), (7, 6)]


def test_skipping_with_two_references_to_itself_can_leave_rows_pointing_at_skipped_ones(
    tmp_path: Path,
) -> None:
    engine = dirty_source(
        tmp_path / "source.db",
        """
        CREATE TABLE staff (
            id INTEGER PRIMARY KEY,
            boss INTEGER REFERENCES staff(id),
            mentor INTEGER REFERENCES staff(id)
        );
        INSERT INTO staff VALUES (1, NULL, NULL), (2, 99, NULL), (3, 2, 1);
        """,
    )
    kept = resolved_only(select_tables(engine, None, "none"), engine.dialect)
    with engine.connect() as conn:
        (left,) = count_dangling(conn, kept)
    assert (left.table, left.columns, left.rows) == ("staff", ("boss",), 1)


def test_keeping_drops_only_the_broken_key_and_says_so(tmp_path: Path) -> None:
    engine = dirty_source(tmp_path / "source.db")
    chosen = ua_flights(engine)
    with engine.connect() as conn:
        kept = without_keys(chosen, count_dangling(conn, chosen))
    flights = next(s for s in kept if s.name == "flights")
    assert [fk.ref_table for fk in flights.schema.foreign_keys] == ["airlines"]
    assert flights.reason == (
        "listed; foreign key flights.tailnum left out: rows point at no copied planes row "
        "(on_dangling: keep)"
    )
    assert [s for s in kept if s.name != "flights"] == [s for s in chosen if s.name != "flights"]


def test_the_default_policy_keeps_the_data_digest_of_specs_recorded_before_it() -> None:
    before = {"from": "local", "to": "prod", "mode": "upsert", "tables": ["flights"]}
    assert data_digest({**before, "on_dangling": "refuse"}) == data_digest(before)
    assert data_digest({**before, "on_dangling": "skip"}) != data_digest(before)


@pytest.mark.parametrize(("policy", "recorded"), [("refuse", None), ("skip", "skip")])
def test_the_default_policy_is_not_recorded_so_older_records_read_the_same(
    tmp_path: Path, policy: str, recorded: str | None
) -> None:
    manifest = parse_manifest(
        "version: 1\nconnections:\n  local: {driver: sqlite, database: a.db}\n"
        "  prod: {driver: sqlite, database: b.db}\n"
        f"migrations:\n  out: {{from: local, to: prod, on_dangling: {policy}}}\n",
        base_dir=tmp_path,
    )
    document = migration_document(manifest, manifest.migrations["out"])
    assert document.get("on_dangling") == recorded


# -- plan and apply -------------------------------------------------------------------------


def _dangling_allowed(conn: sa.Connection) -> None:
    """Lets the transaction write rows pointing nowhere: PostgreSQL checks foreign keys by
    triggers, which a superuser's session can turn off (SQLite does not check them here)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")


def manifest_for(
    tmp_path: Path, url: str, policy: str | None, mode: str = "upsert", source: str | None = None
) -> Path:
    """A migration of UA's flights and their parents from `source` (a URL; by default the
    SQLite file source.db) into `url`."""
    line = f"    on_dangling: {policy}\n" if policy else ""
    local = (
        f"{{url: '{source}'}}"
        if source
        else f"{{driver: sqlite, database: {tmp_path / 'source.db'}}}"
    )
    path = tmp_path / "dsdb.yaml"
    path.write_text(
        "version: 1\nconnections:\n"
        f"  local: {local}\n"
        f"  target: {{url: '{url}'}}\n"
        "migrations:\n"
        f"  ua:\n    from: local\n    to: target\n    mode: {mode}\n    follow: parents\n"
        f"{line}    tables:\n      {UA_FLIGHTS}"
    )
    return path


def target_url(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> str:
    if kind == "sqlite":
        return sqlite_url(tmp_path / "target.db")
    server = request.getfixturevalue("postgres_db" if kind == "postgresql" else "mariadb_db")
    return str(server.url_string)


@pytest.mark.parametrize("kind", EVERY_DATABASE)
def test_dangling_references_fail_the_plan_and_the_apply_writes_nothing(
    capsys, request, tmp_path: Path, kind: str
) -> None:
    dirty_source(tmp_path / "source.db")
    url = target_url(request, tmp_path, kind)
    manifest = manifest_for(tmp_path, url, None)
    message = (
        "migration.ua: references that would dangle in the target: flights.tailnum → "
        "planes.tailnum: 3 rows point at no copied planes row (e.g. 'N404', 'N500'); set "
        "`on_dangling: skip` to leave those rows out, or `on_dangling: keep` to copy them "
        "without that key"
    )
    plan = run_cli(capsys, "plan", manifest)
    assert plan.code == 1 and message in plan.err, plan.text
    assert "Traceback" not in plan.text
    applied = run_cli(capsys, "apply", manifest, "--auto-approve")
    assert applied.code == 1 and message in applied.err, applied.text
    assert table_names(url) == []


@pytest.mark.parametrize("kind", EVERY_DATABASE)
def test_skip_copies_every_resolvable_row_and_no_dangling_one(
    capsys, request, tmp_path: Path, kind: str
) -> None:
    source = dirty_source(tmp_path / "source.db")
    url = target_url(request, tmp_path, kind)
    manifest = manifest_for(tmp_path, url, "skip")
    planned = run_cli(capsys, "plan", manifest, "--format", "json")
    (action,) = json.loads(planned.out)["actions"]
    assert action["payload"]["dangling"] == [
        {
            "table": "flights",
            "columns": ["tailnum"],
            "ref_table": "planes",
            "ref_columns": ["tailnum"],
            "rows": 3,
            "examples": ["'N404'", "'N500'"],
            "more": False,
            "masked": [],
        }
    ]
    plan = run_cli(capsys, "plan", manifest)
    assert (
        "skips flights.tailnum → planes.tailnum: 3 rows point at no copied planes row "
        "(e.g. 'N404', 'N500'), and any rows pointing at those"
    ) in plan.out, plan.text
    assert "flights → target.flights: 3 rows" in plan.out
    # A saved plan carries what it found, and applies as shown.
    saved = tmp_path / "plan.json"
    assert run_cli(capsys, "plan", manifest, "-o", saved).code == 0
    applied = run_cli(capsys, "apply", saved, "--auto-approve")
    assert applied.code == 0, applied.text
    with source.connect() as conn:
        resolvable = conn.exec_driver_sql(
            "SELECT * FROM flights WHERE carrier = 'UA' AND "
            "(tailnum IS NULL OR tailnum IN (SELECT tailnum FROM planes))"
        ).all()
    assert table_rows(url, "flights") == sorted((tuple(r) for r in resolvable), key=repr)
    planes = {row[0] for row in table_rows(url, "planes")}
    assert all(row[2] is None or row[2] in planes for row in table_rows(url, "flights"))
    again = run_cli(capsys, "plan", manifest, "--detailed-exitcode")
    assert again.code == 0, again.text
    verified = run_cli(capsys, "verify", manifest)  # against the subset without those rows
    assert verified.code == 0, verified.text


@pytest.mark.parametrize("kind", EVERY_DATABASE)
def test_keep_copies_the_dangling_rows_without_their_key(
    capsys, request, tmp_path: Path, kind: str
) -> None:
    dirty_source(tmp_path / "source.db")
    url = target_url(request, tmp_path, kind)
    manifest = manifest_for(tmp_path, url, "keep")
    plan = run_cli(capsys, "plan", manifest)
    assert (
        "keeps flights.tailnum → planes.tailnum: 3 rows point at no copied planes row "
        "(e.g. 'N404', 'N500'); that foreign key is left out of the target"
    ) in plan.out, plan.text
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    expected = [row for row in table_rows(sqlite_url(tmp_path / "source.db"), "flights")]
    assert table_rows(url, "flights") == [row for row in expected if row[1] == "UA"]
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    keys = sa.inspect(engine).get_foreign_keys("flights")
    engine.dispose()
    assert [key["referred_table"] for key in keys] == ["airlines"]
    again = run_cli(capsys, "plan", manifest, "--detailed-exitcode")
    assert again.code == 0, again.text


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_keep_is_refused_by_the_plan_where_the_target_table_enforces_the_key(
    capsys, request, tmp_path: Path, kind: str
) -> None:
    dirty_source(tmp_path / "source.db")
    url = target_url(request, tmp_path, kind)
    skipping = manifest_for(tmp_path, url, "skip")
    assert run_cli(capsys, "apply", skipping, "--auto-approve").code == 0
    before = table_rows(url, "flights")
    keeping = manifest_for(tmp_path, url, "keep")
    plan = run_cli(capsys, "plan", keeping)
    assert plan.code == 1, plan.text
    assert (
        "migration.ua: on_dangling: keep cannot copy flights.tailnum → planes.tailnum: 3 rows "
        "point at no copied planes row (e.g. 'N404', 'N500'), into flights, whose foreign key "
        "refuses them: drop that key in the target, or use on_dangling: skip"
    ) in plan.err
    assert run_cli(capsys, "apply", keeping, "--auto-approve").code == 1
    assert table_rows(url, "flights") == before


def test_keep_into_a_sqlite_table_that_declares_the_key_copies_every_row(
    capsys, tmp_path: Path
) -> None:
    # SQLite checks no foreign key on dsdb's connections, so the key is no obstacle there.
    dirty_source(tmp_path / "source.db")
    url = sqlite_url(tmp_path / "target.db")
    assert run_cli(capsys, "apply", manifest_for(tmp_path, url, "skip"), "--auto-approve").code == 0
    keeping = manifest_for(tmp_path, url, "keep")
    plan = run_cli(capsys, "plan", keeping)
    assert plan.code == 0, plan.text
    assert run_cli(capsys, "apply", keeping, "--auto-approve").code == 0
    source = table_rows(sqlite_url(tmp_path / "source.db"), "flights")
    assert table_rows(url, "flights") == [row for row in source if row[1] == "UA"]


@pytest.mark.parametrize("kind", EVERY_DATABASE)
def test_skip_follows_a_reference_to_itself_in_the_source_database(
    capsys, request, tmp_path: Path, kind: str
) -> None:
    """A filter leaves out a boss: under skip, their staff and the staff below those are
    left out too, by a recursive query each source database runs."""
    source = database(request, tmp_path, kind)
    with source.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE staff (id INTEGER PRIMARY KEY, boss INTEGER, dept VARCHAR(10), "
            "FOREIGN KEY (boss) REFERENCES staff (id))"
        )
        for row in ("1, NULL, 'a'", "4, NULL, 'b'", "3, 4, 'a'", "2, 1, 'a'", "5, 3, 'a'"):
            conn.exec_driver_sql(f"INSERT INTO staff VALUES ({row})")
    url = source.url.render_as_string(hide_password=False)
    source.dispose()
    target = sqlite_url(tmp_path / "target.db")
    manifest = tmp_path / "dsdb.yaml"
    manifest.write_text(
        "version: 1\nconnections:\n"
        f"  source: {{url: '{url}'}}\n  target: {{url: '{target}'}}\n"
        "migrations:\n  a:\n    from: source\n    to: target\n    on_dangling: skip\n"
        "    tables: {staff: {where: {dept: a}}}\n"
    )
    plan = run_cli(capsys, "plan", manifest)
    assert "skips staff.boss → staff.id: 1 row points at no copied staff row (e.g. 4)" in (
        plan.out
    ), plan.text
    assert "staff → target.staff: 2 rows" in plan.out
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    assert table_rows(target, "staff") == [(1, None, "a"), (2, 1, "a")]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_apply_counts_dangling_rows_again_only_when_the_source_changed_since_the_plan(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The plan counts them; while the source is the one it read, the apply takes the plan's:
    proved by SQLite's change token, by the content of PostgreSQL's tables (their own
    tokens). A write to the source since makes the apply count again, and refuse."""
    source = database(request, tmp_path, kind)
    with source.begin() as conn:
        _dangling_allowed(conn)
        for statement in DIRTY_FLIGHTS.split(";"):
            if statement.strip():
                conn.exec_driver_sql(statement)
        conn.exec_driver_sql("DELETE FROM flights WHERE tailnum IN ('N404', 'N500')")
    url = source.url.render_as_string(hide_password=False)
    manifest = manifest_for(tmp_path, sqlite_url(tmp_path / "target.db"), None, source=url)
    counted: list[int] = []
    real_count = migration_kind.count_dangling

    def count(conn: sa.Connection, chosen: list[TableSelection]) -> list[Dangling]:
        counted.append(len(chosen))
        return real_count(conn, chosen)

    monkeypatch.setattr(migration_kind, "count_dangling", count)
    with Project.open(manifest) as project, project.locked("apply"):
        plan = project.plan()
        assert len(counted) == 1  # the plan's count
        assert project.apply(plan).ok
        assert len(counted) == 1  # the source did not change: none again
    (tmp_path / "target.db").unlink()
    with Project.open(manifest) as project, project.locked("apply"):
        plan = project.plan()
        with source.begin() as conn:
            _dangling_allowed(conn)
            conn.exec_driver_sql("INSERT INTO flights VALUES (9, 'UA', 'N404', 4)")
        report = project.apply(plan)
    assert not report.ok and len(counted) == 3
    assert "flights.tailnum → planes.tailnum: 1 row" in report.failed[0].message
    assert table_names(sqlite_url(tmp_path / "target.db")) == []


@pytest.mark.parametrize("kind", EVERY_DATABASE)
def test_every_source_database_counts_and_skips_alike_with_or_without_an_index(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    """Declared references (no key in the source) to an unindexed, nullable column, looked
    up by IN in SQLite and MariaDB and by EXISTS elsewhere (`looks_up_by_membership`)."""
    engine = database(request, tmp_path, kind)
    with engine.begin() as conn:
        for statement in (
            "CREATE TABLE crew (id INTEGER PRIMARY KEY, badge INTEGER, boss INTEGER)",
            "CREATE TABLE shifts (id INTEGER PRIMARY KEY, badge INTEGER, day INTEGER)",
            "INSERT INTO crew VALUES (1, 10, NULL), (2, 20, 10), (3, 30, 77), (4, 40, 30),"
            " (5, NULL, NULL)",
            "INSERT INTO shifts VALUES (1, 10, 1), (2, 20, 1), (3, 30, 2), (4, NULL, 2),"
            " (5, 40, 3), (6, 50, 4)",
        ):
            conn.exec_driver_sql(statement)
    references = [
        ("crew", ForeignKeySchema(None, ("boss",), "crew", ("badge",))),
        ("shifts", ForeignKeySchema(None, ("badge",), "crew", ("badge",))),
    ]
    chosen = select_tables(engine, None, "none", references=references)
    with engine.connect() as conn:
        found = {(d.table, d.columns): (d.rows, d.examples) for d in count_dangling(conn, chosen)}
        # Nobody has badge 77 or 50 (crew 5's NULL badge matches nothing, and hides nothing).
        assert found == {("crew", ("boss",)): (1, ("77",)), ("shifts", ("badge",)): (1, ("50",))}
        kept = resolved_only(chosen, engine.dialect)
        assert count_dangling(conn, kept) == []
    rows = {s.name: sorted(r[0] for r in selected(engine, s)) for s in kept}
    # Crew 3 is skipped, and 4 below it; so are their shifts and shift 6.
    assert rows == {"crew": [1, 2, 5], "shifts": [1, 2, 4]}
    engine.dispose()
