"""The engines: their rules as values (no server), the seam's methods on every database, and
each fidelity bug of issue 13 on the real servers, through `driver: mysql` and `driver: mariadb`
alike."""

from __future__ import annotations

import datetime as dt
import json
import socket
import sqlite3
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

import dsdb_plan as dsdb
from dsdb_plan.connection import Connection
from dsdb_plan.dbschema import (
    ColumnSchema,
    ForeignKeySchema,
    IndexSchema,
    TableSchema,
    portable_type,
    reflect_tables,
)
from dsdb_plan.engines import TableSwap, UnknownEngineError, engine_for, same_kind
from dsdb_plan.engines import mysql as mysql_engine
from dsdb_plan.engines.base import portable_default
from dsdb_plan.engines.mysql import is_exact_collation
from dsdb_plan.errors import PlanError
from dsdb_plan.migrate import copier
from dsdb_plan.migrate.snapshot import consistent_snapshot
from dsdb_plan.values import row_converter
from tests.helpers import (
    EVERY_DATABASE,
    MYSQL_DRIVERS,
    database,
    run_cli,
    table_rows,
    through,
)
from tests.servers import ServerDatabase

# -- the rules, as values ----------------------------------------------------------------------


def test_every_known_dialect_has_its_engine_and_an_unknown_one_is_an_error() -> None:
    assert engine_for("sqlite").name == "SQLite"
    assert engine_for("postgresql").name == "PostgreSQL"
    assert engine_for("mysql") is engine_for("mariadb")
    assert engine_for(mysql_dialect.dialect()).name == "MySQL/MariaDB"
    assert engine_for("duckdb").name == "DuckDB"
    with pytest.raises(UnknownEngineError) as raised:
        engine_for("mssql")
    assert str(raised.value) == (
        "dsdb has no rules for the 'mssql' database engine "
        "(it knows sqlite, postgresql, mysql, mariadb, duckdb)"
    )


def test_capabilities_are_data() -> None:
    sqlite, postgresql, mysql = (engine_for(n) for n in ("sqlite", "postgresql", "mysql"))
    assert sqlite.capabilities.single_writer and not postgresql.capabilities.single_writer
    assert postgresql.capabilities.transactional_ddl and not mysql.capabilities.transactional_ddl
    assert not sqlite.capabilities.adds_constraints_later
    assert postgresql.capabilities.max_identifier_length == 63
    assert mysql.capabilities.max_identifier_length == 64
    assert not mysql.capabilities.stores_non_finite_floats
    assert not sqlite.capabilities.typed_columns


def test_tables_on_either_mysql_dialect_get_the_exact_collation_under_its_own_name() -> None:
    """SQLAlchemy's `mariadb` dialect ignores `mysql_collate`: the bug that lost rows."""
    mariadb = mysql_dialect.dialect(is_mariadb=True)
    mariadb.name = "mariadb"
    rules = engine_for(mariadb)
    assert rules.table_options(mariadb) == {
        "mariadb_engine": "InnoDB",
        "mariadb_charset": "utf8mb4",
        "mariadb_collate": "utf8mb4_nopad_bin",
    }
    mysql8 = mysql_dialect.dialect()
    mysql8.server_version_info = (8, 0, 36)
    assert rules.table_options(mysql8)["mysql_collate"] == "utf8mb4_0900_bin"


@pytest.mark.parametrize(
    ("collation", "exact"),
    [
        ("utf8mb4_nopad_bin", True),
        ("utf8mb4_0900_bin", True),
        ("binary", True),
        ("utf8mb4_bin", False),  # PAD SPACE: 'x ' = 'x'
        ("utf8mb4_general_ci", False),
        ("utf8mb4_unicode_nopad_ci", False),
    ],
)
def test_only_binary_no_pad_collations_are_exact(collation: str, exact: bool) -> None:
    assert is_exact_collation(collation) is exact


@pytest.mark.parametrize(
    ("raw", "portable", "expected"),
    [
        ("1", "boolean", "true"),
        ("0", "boolean", "false"),
        ("false", "boolean", "false"),  # PostgreSQL
        ("'t'", "boolean", "true"),
        ("TRUE", "boolean", "true"),  # SQLite as written
        ("2", "boolean", None),
        ("'abc'::character varying", "varchar", "'abc'"),
        ("(42)", "bigint", "42"),
        ("current_timestamp(6)", "datetime", "CURRENT_TIMESTAMP"),
        ("now()", "datetime", "CURRENT_TIMESTAMP"),
        ("nextval('t_id_seq'::regclass)", "bigint", None),
        ("gen_random_uuid()", "uuid", None),
        (None, "text", None),
    ],
)
def test_reflected_defaults_become_portable(raw: Any, portable: str, expected: str | None) -> None:
    assert portable_default(raw, portable) == expected


@pytest.mark.parametrize(
    ("column", "sqlite", "postgresql", "mysql"),
    [
        (ColumnSchema("a", "boolean", default="true"), "1", "true", "1"),
        (ColumnSchema("a", "boolean", default="false"), "0", "false", "0"),
        (ColumnSchema("a", "bigint", default="'7'"), "7", "7", "7"),
        (ColumnSchema("a", "bigint", default="'seven'"), None, None, None),
        (ColumnSchema("a", "text", default="5"), "'5'", "'5'", "'5'"),
        (ColumnSchema("a", "varchar", default="'x'"), "'x'", "'x'", "'x'"),
        (
            ColumnSchema("a", "datetime", default="CURRENT_TIMESTAMP"),
            "CURRENT_TIMESTAMP",
            "CURRENT_TIMESTAMP",
            "CURRENT_TIMESTAMP(6)",
        ),
        (ColumnSchema("a", "date", default="CURRENT_TIMESTAMP"), None, "CURRENT_TIMESTAMP", None),
    ],
)
def test_defaults_are_written_per_engine(
    column: ColumnSchema, sqlite: str | None, postgresql: str | None, mysql: str | None
) -> None:
    names = ("sqlite", "postgresql", "mysql")
    written = [engine_for(name).column_default(column) for name in names]
    assert written == [sqlite, postgresql, mysql]


def test_a_default_an_engine_cannot_write_is_left_out_and_said() -> None:
    column = ColumnSchema("born", "date", default="CURRENT_TIMESTAMP")
    assert engine_for("mysql").default_left_out(column) == (
        "default CURRENT_TIMESTAMP of column 'born' left out: "
        "MySQL/MariaDB cannot give it to a date column"
    )
    assert engine_for("postgresql").default_left_out(column) is None


def test_arrays_become_json_and_enums_text() -> None:
    assert portable_type(postgresql_dialect.ARRAY(sa.Text())).type == "json"
    assert portable_type(postgresql_dialect.ARRAY(sa.Integer())).type == "json"
    assert portable_type(postgresql_dialect.ENUM("ok", "sad", name="mood")).type == "text"


# -- the bugs, on the real servers ------------------------------------------------------------

#: Keys distinct in SQLite and PostgreSQL that case-, accent- or pad-insensitive text merges.
AWKWARD_KEYS = [("abc", 1), ("ABC", 2), ("é", 3), ("e", 4), ("x ", 5), ("x", 6)]


def _sqlite(path: Path, script: str) -> str:
    with sqlite3.connect(path) as db:
        db.executescript(script)
    db.close()
    return f"sqlite:///{path}"


def _manager(tmp_path: Path, **urls: str) -> dsdb.ConnectionManager:
    mngr = dsdb.ConnectionManager({name: {"url": url} for name, url in urls.items()}, user="t")
    mngr.backup_root = tmp_path / "backups"
    return mngr


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        return sorted(tuple(row) for row in conn.exec_driver_sql(query))


def _keys_source(tmp_path: Path) -> str:
    values = ", ".join(f"('{key}', {value})" for key, value in AWKWARD_KEYS)
    return _sqlite(
        tmp_path / "keys.db",
        f"CREATE TABLE k (name TEXT PRIMARY KEY, v INTEGER); INSERT INTO k VALUES {values};",
    )


@pytest.mark.parametrize("driver", MYSQL_DRIVERS)
def test_keys_differing_only_by_case_accent_or_trailing_space_stay_distinct(
    tmp_path: Path, mariadb_db: ServerDatabase, driver: str
) -> None:
    target = through(mariadb_db, driver)
    mngr = _manager(tmp_path, local=_keys_source(tmp_path), my=target)
    mngr.migrate("local", "my")
    assert _rows(target, "SELECT name, v FROM k") == sorted(AWKWARD_KEYS)
    collation = _rows(
        target,
        "SELECT collation_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = 'k' AND column_name = 'name'",
    )
    assert collation == [("utf8mb4_nopad_bin",)]
    # A backup of the same data restores into a fresh table just as exactly.
    mngr.backup("local")
    with sa.create_engine(target, poolclass=sa.pool.NullPool).begin() as conn:
        conn.exec_driver_sql("DROP TABLE k")
    mngr.restore("local", "my")
    assert _rows(target, "SELECT name, v FROM k") == sorted(AWKWARD_KEYS)


@pytest.mark.parametrize("driver", MYSQL_DRIVERS)
def test_an_existing_target_whose_collation_merges_keys_is_a_plan_error(
    tmp_path: Path, mariadb_db: ServerDatabase, driver: str
) -> None:
    target = through(mariadb_db, driver)
    with sa.create_engine(target, poolclass=sa.pool.NullPool).begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE k (name VARCHAR(20) PRIMARY KEY, v INTEGER) COLLATE utf8mb4_general_ci"
        )
    mngr = _manager(tmp_path, local=_keys_source(tmp_path), my=target)
    with pytest.raises(PlanError) as raised:
        mngr.migrate("local", "my")
    assert str(raised.value) == (
        "table 'k': column 'name' has collation utf8mb4_general_ci in the target, which holds "
        "text that differs only by case, accent or trailing space as equal, so distinct keys "
        "from the source would merge (a binary NO PAD collation such as utf8mb4_nopad_bin "
        "keeps them apart)"
    )
    assert _rows(target, "SELECT * FROM k") == []


@pytest.mark.postgres
def test_a_sqlite_boolean_default_is_created_on_postgresql_by_migration_and_restore(
    tmp_path: Path, postgres_db: ServerDatabase
) -> None:
    source = _sqlite(
        tmp_path / "flags.db",
        "CREATE TABLE f (id INTEGER PRIMARY KEY, active BOOLEAN NOT NULL DEFAULT 1, "
        "hidden BOOLEAN DEFAULT FALSE); INSERT INTO f (id) VALUES (1);",
    )
    mngr = _manager(tmp_path, local=source, pg=postgres_db.url_string)
    mngr.migrate("local", "pg")
    insert = "INSERT INTO f (id) VALUES (2)"
    with postgres_db.engine().begin() as conn:
        conn.exec_driver_sql(insert)
    assert _rows(postgres_db.url_string, "SELECT * FROM f") == [(1, True, False), (2, True, False)]

    postgres_db.reset()
    mngr.backup("local")
    mngr.restore("local", "pg")
    with postgres_db.engine().begin() as conn:
        conn.exec_driver_sql(insert)
    assert _rows(postgres_db.url_string, "SELECT * FROM f") == [(1, True, False), (2, True, False)]


@pytest.mark.postgres
@pytest.mark.parametrize("target", ["sqlite", *MYSQL_DRIVERS])
def test_a_postgresql_boolean_default_is_kept(
    tmp_path: Path, postgres_db: ServerDatabase, mariadb_db: ServerDatabase, target: str
) -> None:
    with postgres_db.engine().begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE f (id int PRIMARY KEY, active boolean DEFAULT false NOT NULL);"
            "INSERT INTO f VALUES (1, true)"
        )
    url = _sqlite(tmp_path / "t.db", "") if target == "sqlite" else through(mariadb_db, target)
    mngr = _manager(tmp_path, pg=postgres_db.url_string, to=url)
    mngr.migrate("pg", "to")
    with sa.create_engine(url, poolclass=sa.pool.NullPool).begin() as conn:
        conn.exec_driver_sql("INSERT INTO f (id) VALUES (2)")
    assert _rows(url, "SELECT id, active FROM f") == [(1, 1), (2, 0)]


@pytest.mark.parametrize("driver", MYSQL_DRIVERS)
def test_an_inline_unique_on_a_bounded_column_is_kept(
    tmp_path: Path, mariadb_db: ServerDatabase, driver: str
) -> None:
    source = _sqlite(
        tmp_path / "u.db",
        "CREATE TABLE u (id INTEGER PRIMARY KEY, code VARCHAR(20) UNIQUE, note TEXT UNIQUE);"
        "INSERT INTO u VALUES (1, 'a', 'x'), (2, 'b', 'y');",
    )
    unique = {IndexSchema(None, ("code",), True), IndexSchema(None, ("note",), True)}
    (schema,) = reflect_tables(sa.create_engine(source), ["u"])
    assert set(schema.indexes) == unique
    target = through(mariadb_db, driver)
    mngr = _manager(tmp_path, local=source, my=target)
    info = mngr.backup("local")
    assert {(i.columns, i.unique) for i in info.table("u").indexes} == {
        (("code",), True),
        (("note",), True),
    }
    mngr.migrate("local", "my")
    (copied,) = reflect_tables(sa.create_engine(target, poolclass=sa.pool.NullPool), ["u"])
    assert {(i.columns, i.unique) for i in copied.indexes} == {
        (("code",), True),
        (("note",), True),
    }
    engine = sa.create_engine(target, poolclass=sa.pool.NullPool)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO u VALUES (3, 'a', 'z')")


def _postgres_arrays(postgres_db: ServerDatabase) -> None:
    with postgres_db.engine().begin() as conn:
        conn.exec_driver_sql(
            "CREATE TYPE mood AS ENUM ('ok', 'sad');"
            "CREATE TABLE a (id int PRIMARY KEY, tags text[], ns int[], m mood, ms mood[]);"
            "INSERT INTO a VALUES (1, '{x,\"y z\",NULL}', '{1,2}', 'ok', '{ok,sad}'),"
            " (2, '{}', NULL, NULL, NULL)"
        )


#: The rows of `_postgres_arrays` in their portable form: arrays as JSON text, enums as labels.
PORTABLE_ARRAYS = [
    (1, ["x", "y z", None], [1, 2], "ok", ["ok", "sad"]),
    (2, [], None, None, None),
]


def _parsed(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [
        (row[0], *(json.loads(v) if isinstance(v, str) and v[:1] == "[" else v for v in row[1:]))
        for row in rows
    ]


@pytest.mark.postgres
@pytest.mark.parametrize("target", ["sqlite", *MYSQL_DRIVERS])
def test_postgresql_arrays_and_enums_land_as_json_and_labels(
    tmp_path: Path, postgres_db: ServerDatabase, mariadb_db: ServerDatabase, target: str
) -> None:
    _postgres_arrays(postgres_db)
    url = _sqlite(tmp_path / "t.db", "") if target == "sqlite" else through(mariadb_db, target)
    mngr = _manager(tmp_path, pg=postgres_db.url_string, to=url)
    mngr.migrate("pg", "to")
    query = "SELECT id, tags, ns, m, ms FROM a"
    migrated = _rows(url, query)
    assert migrated[0][1] == '["x","y z",null]'  # JSON text, never a Python repr
    assert _parsed(migrated) == PORTABLE_ARRAYS
    # A backup holds the same portable form, and restores it.
    with sa.create_engine(url, poolclass=sa.pool.NullPool).begin() as conn:
        conn.exec_driver_sql("DROP TABLE a")
    mngr.backup("pg")
    mngr.restore("pg", "to")
    assert _rows(url, query) == migrated


@pytest.mark.parametrize("driver", MYSQL_DRIVERS)
def test_a_column_named_with_a_backtick_copies_and_then_plans_no_change(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest: Any,
    mariadb_db: ServerDatabase,
    driver: str,
) -> None:
    source = through(mariadb_db, driver)
    with sa.create_engine(source, poolclass=sa.pool.NullPool).begin() as conn:
        conn.exec_driver_sql("CREATE TABLE `my table` (id INT PRIMARY KEY, `back``tick` TEXT)")
        conn.exec_driver_sql("INSERT INTO `my table` VALUES (1, 'q'), (2, NULL)")
    manifest = write_manifest(
        "version: 1\nconnections:\n"
        f"  my: {{url: '{source}'}}\n"
        "  local: {driver: sqlite, database: copy.db}\n"
        "migrations:\n  out: {from: my, to: local}\n"
    )
    applied = run_cli(capsys, "apply", manifest, "--auto-approve")
    assert applied.code == 0, applied.text
    assert _rows(f"sqlite:///{tmp_path / 'copy.db'}", 'SELECT * FROM "my table"') == [
        (1, "q"),
        (2, None),
    ]
    again = run_cli(capsys, "plan", manifest, "--detailed-exitcode")
    assert again.code == 0, again.text
    assert "No changes." in again.out


@pytest.mark.parametrize("driver", MYSQL_DRIVERS)
def test_a_target_column_too_narrow_for_the_data_is_a_plan_error(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest: Any,
    mariadb_db: ServerDatabase,
    driver: str,
) -> None:
    _sqlite(
        tmp_path / "n.db",
        "CREATE TABLE n (id INTEGER PRIMARY KEY, label TEXT);"
        "INSERT INTO n VALUES (1, 'short'), (2, 'twenty-three chars long'), (3, 'é' || 'x');",
    )
    target = through(mariadb_db, driver)
    with sa.create_engine(target, poolclass=sa.pool.NullPool).begin() as conn:
        conn.exec_driver_sql("CREATE TABLE n (id INT PRIMARY KEY, label VARCHAR(10))")
    text = (
        "version: 1\nconnections:\n"
        "  local: {driver: sqlite, database: n.db}\n"
        f"  my: {{url: '{target}'}}\n"
        "migrations:\n  in: {from: local, to: my, tables: {n: WHERE}}\n"
    )
    manifest = write_manifest(text.replace("WHERE", "{}"))
    plan = run_cli(capsys, "plan", manifest)
    assert plan.code == 1
    assert (
        "table 'n': column 'label' holds text of up to 23 characters in the source, longer "
        "than the 10 the target's varchar(10) holds"
    ) in plan.text
    # Only the subset counts: without the long row the copy goes ahead.
    manifest = write_manifest(text.replace("WHERE", "{where: {id: {ne: 2}}}"))
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    assert _rows(target, "SELECT * FROM n") == [(1, "short"), (3, "éx")]


@pytest.mark.parametrize("driver", MYSQL_DRIVERS)
def test_a_new_mysql_key_longer_than_its_indexable_length_is_a_plan_error(
    tmp_path: Path, mariadb_db: ServerDatabase, driver: str
) -> None:
    long_key = "k" * 300
    source = _sqlite(
        tmp_path / "l.db",
        f"CREATE TABLE l (name TEXT PRIMARY KEY); INSERT INTO l VALUES ('{long_key}'), ('b');",
    )
    mngr = _manager(tmp_path, local=source, my=through(mariadb_db, driver))
    with pytest.raises(PlanError) as raised:
        mngr.migrate("local", "my")
    assert str(raised.value) == (
        "table 'l': column 'name' holds text of up to 300 characters in the source, longer "
        "than the 255 the target's varchar(255) holds"
    )


def test_a_connection_to_an_engine_dsdb_does_not_know_is_refused_when_validated(
    capsys: pytest.CaptureFixture[str], write_manifest: Any
) -> None:
    manifest = write_manifest(
        "version: 1\nconnections:\n  x: {driver: mssql, host: h, database: d}\n"
    )
    validated = run_cli(capsys, "validate", manifest)
    assert validated.code == 1
    assert validated.err.splitlines()[-1].endswith(
        "connections.x.driver: dsdb has no rules for the 'mssql' database engine "
        "(it knows sqlite, postgresql, mysql, mariadb, duckdb)"
    )


@pytest.mark.mariadb
def test_the_plan_says_which_default_a_new_table_leaves_out(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest: Any,
    mariadb_db: ServerDatabase,
) -> None:
    _sqlite(
        tmp_path / "d.db",
        "CREATE TABLE p (id INTEGER PRIMARY KEY, born DATE DEFAULT CURRENT_TIMESTAMP);"
        "INSERT INTO p VALUES (1, '2024-01-02');",
    )
    manifest = write_manifest(
        "version: 1\nconnections:\n"
        "  local: {driver: sqlite, database: d.db}\n"
        f"  my: {{url: '{through(mariadb_db, 'mariadb')}'}}\n"
        "migrations:\n  in: {from: local, to: my}\n"
    )
    plan = run_cli(capsys, "plan", manifest)
    assert plan.code == 0, plan.text
    assert (
        "p → my.p: 1 row (upsert, new table, default CURRENT_TIMESTAMP of column 'born' left "
        "out: MySQL/MariaDB cannot give it to a date column)"
    ) in plan.out
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0


# -- the seam's methods: what differs between engines, as values -------------------------------


def _dialect(name: str) -> sa.Dialect:
    """A SQLAlchemy dialect of `name`, without a server (MariaDB's as the driver makes it)."""
    if name == "mariadb":
        dialect = mysql_dialect.dialect(is_mariadb=True)
        dialect.name = "mariadb"
        return dialect
    modules = {"sqlite": sqlite_dialect, "postgresql": postgresql_dialect, "mysql": mysql_dialect}
    return modules[name].dialect()  # type: ignore[no-any-return]


_PLUS_TWO = dt.timezone(dt.timedelta(hours=2))
_AWARE = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=_PLUS_TWO)
_NAIVE = dt.datetime(2024, 1, 2, 3, 4, 5)


@pytest.mark.parametrize(
    ("dialect", "value", "portable", "zoned", "bound"),
    [
        # A naive filter value means UTC; a zoned column gets an aware one where it keeps zones.
        ("postgresql", _NAIVE, "datetime", True, _NAIVE.replace(tzinfo=dt.UTC)),
        ("postgresql", _AWARE, "datetime", False, dt.datetime(2024, 1, 2, 1, 4, 5)),
        ("mysql", _NAIVE, "datetime", True, _NAIVE),  # no column keeps a zone
        ("mariadb", _AWARE, "datetime", True, dt.datetime(2024, 1, 2, 1, 4, 5)),
        ("mysql", dt.time(1, 2, tzinfo=_PLUS_TWO), "time", False, dt.time(1, 2)),
        # SQLite compares with the text a copy writes.
        ("sqlite", _AWARE, "datetime", False, "2024-01-02 01:04:05"),
        ("sqlite", _NAIVE, "datetime", True, "2024-01-02 03:04:05+00:00"),
        ("sqlite", dt.date(2024, 1, 2), "date", False, "2024-01-02"),
        ("sqlite", Decimal("1.50"), "decimal", False, "1.50"),
        ("sqlite", Decimal("1.50"), "text", False, 1.5),  # no numeric affinity: as a double
        ("sqlite", uuid.UUID(int=5), "uuid", False, str(uuid.UUID(int=5))),
        # A uuid column does not compare with text on PostgreSQL.
        ("postgresql", str(uuid.UUID(int=5)), "uuid", False, uuid.UUID(int=5)),
        ("postgresql", "not a uuid", "uuid", False, "not a uuid"),
        ("mysql", str(uuid.UUID(int=5)), "uuid", False, str(uuid.UUID(int=5))),
    ],
)
def test_a_filter_value_is_bound_as_each_engine_stores_it(
    dialect: str, value: Any, portable: str, zoned: bool, bound: Any
) -> None:
    found = engine_for(dialect).filter_value(value, portable, zoned)
    assert (found, type(found)) == (bound, type(bound))


@pytest.mark.parametrize(
    ("dialect", "follows", "self_reference", "key_name"),
    [
        ("sqlite", False, "emp", "to_dept"),  # keys name tables: the final name
        ("postgresql", True, "emp__dsdb_new", "to_dept"),
        ("mysql", True, "emp__dsdb_new", None),  # constraint names are per schema
    ],
)
def test_a_staging_table_points_its_keys_where_the_engine_needs_them(
    dialect: str, follows: bool, self_reference: str, key_name: str | None
) -> None:
    engine = engine_for(dialect)
    assert engine.capabilities.keys_follow_renames is follows
    target = TableSchema(
        "emp",
        (ColumnSchema("id", "bigint"), ColumnSchema("boss", "bigint"), ColumnSchema("d", "bigint")),
        ("id",),
        (
            ForeignKeySchema("to_boss", ("boss",), "emp", ("id",)),
            ForeignKeySchema("to_dept", ("d",), "dept", ("id",)),
        ),
    )
    staged = copier._staging_schema(target, "emp__dsdb_new", engine)
    to_boss, to_dept = staged.foreign_keys
    assert staged.name == "emp__dsdb_new"
    assert (to_boss.ref_table, to_dept.ref_table, to_dept.name) == (
        self_reference,
        "dept",
        key_name,
    )


@pytest.mark.parametrize(
    ("dialect", "prefix", "cap"),
    [
        ("sqlite", None, None),  # counted: no estimator worth asking
        ("postgresql", "EXPLAIN (FORMAT JSON)", None),
        ("mysql", "EXPLAIN", "@@cte_max_recursion_depth"),
        ("mariadb", "EXPLAIN EXTENDED", "@@max_recursive_iterations"),
    ],
)
def test_each_engine_names_its_estimator_and_its_recursion_cap(
    dialect: str, prefix: str | None, cap: str | None
) -> None:
    rules = engine_for(dialect)
    assert rules.explain_prefix(_dialect(dialect)) == prefix
    assert rules.recursion_cap(_dialect(dialect)) == cap


@pytest.mark.parametrize(
    ("dialect", "plan", "rows"),
    [
        ("postgresql", [{"QUERY PLAN": '[{"Plan": {"Plan Rows": 42}}]'}], 42.0),
        ("postgresql", [{"QUERY PLAN": [{"Plan": {"Plan Rows": 7}}]}], 7.0),
        # rows x filtered % of each table of the outer query, along its join; subqueries not.
        (
            "mysql",
            [
                {"id": 1, "rows": 200, "filtered": 50.0},
                {"id": 1, "rows": 3, "filtered": 100.0},
                {"id": 2, "rows": 1000, "filtered": 100.0},
            ],
            300.0,
        ),
    ],
)
def test_a_row_estimate_is_read_from_each_engines_plan(
    dialect: str, plan: list[dict[str, Any]], rows: float
) -> None:
    assert engine_for(dialect).explained_rows(plan) == rows  # type: ignore[arg-type]


def test_a_mysql_plan_without_the_outer_query_gives_no_estimate() -> None:
    with pytest.raises(ValueError, match="outer query"):
        engine_for("mysql").explained_rows([{"id": 2, "rows": 5, "filtered": 100.0}])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("sqlite", "sqlite", True),
        ("mariadb", "mariadb", True),
        ("mysql", "mariadb", False),  # one engine, two products: their own digests differ
        ("postgresql", "sqlite", False),
    ],
)
def test_native_fingerprints_compare_only_within_one_product(a: str, b: str, same: bool) -> None:
    assert same_kind(_dialect(a), _dialect(b)) is same


def test_a_converter_into_an_engine_dsdb_does_not_know_is_refused() -> None:
    schema = TableSchema("t", (ColumnSchema("id", "bigint"),), ("id",))
    with pytest.raises(UnknownEngineError, match="'mssql'"):
        row_converter(schema, "sqlite", "mssql")


# -- the seam's methods on each database ---------------------------------------------------------


_PARENT_AND_CHILD = (
    "CREATE TABLE parent (id INTEGER PRIMARY KEY, name VARCHAR(20))",
    "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER, "
    "CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES parent (id))",
    "CREATE TABLE parent__dsdb_new (id INTEGER PRIMARY KEY, name VARCHAR(20))",
    "INSERT INTO parent VALUES (1, 'old'), (2, 'old')",
    "INSERT INTO parent__dsdb_new VALUES (1, 'new'), (2, 'new')",
    "INSERT INTO child VALUES (10, 1)",
)


def _run(engine: sa.Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


@pytest.mark.parametrize("kind", EVERY_DATABASE)
def test_other_tables_keys_to_a_table_are_found_alike_everywhere(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    engine = database(request, tmp_path, kind)
    _run(engine, *_PARENT_AND_CHILD)
    with engine.connect() as conn:
        found = engine_for(conn.dialect).incoming_foreign_keys(conn, "parent")
    assert [(table, fk.columns, fk.ref_table, fk.ref_columns) for table, fk in found] == [
        ("child", ("parent_id",), "parent", ("id",))
    ]


@pytest.mark.parametrize("kind", EVERY_DATABASE)
def test_a_swap_puts_the_staging_table_in_place_and_keeps_other_tables_keys(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    engine = database(request, tmp_path, kind)
    _run(engine, *_PARENT_AND_CHILD)
    finished: list[str] = []
    with engine.connect() as conn:
        rules = engine_for(conn.dialect)
        rules.swap_table(conn, TableSwap("parent__dsdb_new", "parent", True, finished.append))
        conn.commit()
        keys = rules.reflect_foreign_keys(conn, "child")
    assert len(finished) == 1  # indexes and sequences, once, on the new table
    assert sorted(sa.inspect(engine).get_table_names()) == ["child", "parent"]
    assert table_rows(engine.url, "parent") == [(1, "new"), (2, "new")]
    assert [(fk.ref_table, fk.columns) for fk in keys] == [("parent", ("parent_id",))]
    if rules.capabilities.enforces_foreign_keys:  # the key is checked against the new table
        with pytest.raises(sa.exc.IntegrityError):
            _run(engine, "INSERT INTO child VALUES (11, 99)")


@pytest.mark.parametrize("kind", EVERY_DATABASE)
def test_a_snapshot_sees_every_table_as_of_one_instant(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    engine = database(request, tmp_path, kind)
    if kind == "sqlite":  # a writer may commit beside a reader
        _run(engine, "PRAGMA journal_mode = WAL")
    _run(engine, "CREATE TABLE a (id INTEGER)", "CREATE TABLE b (id INTEGER)")
    _run(engine, "INSERT INTO a VALUES (1)", "INSERT INTO b VALUES (1)")
    count = "SELECT count(*) FROM {}"
    with consistent_snapshot(engine, read_only=True) as snapshot:
        assert snapshot.exec_driver_sql(count.format("a")).scalar_one() == 1
        _run(engine, "INSERT INTO b VALUES (2)")  # committed after the snapshot began
        assert snapshot.exec_driver_sql(count.format("b")).scalar_one() == 1
    with engine.connect() as conn:
        assert conn.exec_driver_sql(count.format("b")).scalar_one() == 2


@pytest.mark.parametrize("driver", MYSQL_DRIVERS)
def test_keys_go_unchecked_only_within_the_block(mariadb_db: ServerDatabase, driver: str) -> None:
    engine = sa.create_engine(through(mariadb_db, driver))
    _run(engine, *_PARENT_AND_CHILD)
    orphan = "INSERT INTO child VALUES (11, 99)"
    with engine.connect() as conn:
        with engine_for(conn.dialect).keys_unchecked(conn):
            conn.exec_driver_sql(orphan)
        conn.rollback()
        with pytest.raises(sa.exc.IntegrityError):
            conn.exec_driver_sql(orphan)
    engine.dispose()


def test_a_port_whose_server_never_greets_is_named_in_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PostgreSQL, reached with driver: mysql, waits a minute for the client to speak first.
    monkeypatch.setattr(mysql_engine, "GREETING_SECONDS", 0.3)
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        connection = Connection(url=f"mysql+pymysql://root@127.0.0.1:{port}/test")
        engine = connection.create_engine(poolclass=sa.pool.NullPool)
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError) as raised:
            engine.connect()
    assert time.monotonic() - started < 5
    assert (
        f"no MySQL or MariaDB greeting from 127.0.0.1:{port} within 0.3 s: "
        "is that port another kind of server?"
    ) in str(raised.value)


@pytest.mark.parametrize("driver", MYSQL_DRIVERS)
def test_the_greeting_timeout_does_not_limit_queries(
    monkeypatch: pytest.MonkeyPatch, mariadb_db: ServerDatabase, driver: str
) -> None:
    monkeypatch.setattr(mysql_engine, "GREETING_SECONDS", 0.3)
    engine = Connection(url=through(mariadb_db, driver)).create_engine(poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT SLEEP(1)").scalar_one() == 0


#: The file each embedded engine's copy lands in, and the URL to read it back.
_COPIES = {"sqlite": "t.db", "duckdb": "t.duckdb"}


def _copied_into(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, source: sa.Engine, *kinds: str
) -> dict[str, str]:
    """Copy every table of `source` into a file of each of `kinds` in one apply, check the
    next plan has nothing to do, and return each copy's URL."""
    url = source.url.render_as_string(hide_password=False)
    manifest = tmp_path / "dsdb.yaml"
    manifest.write_text(
        f"version: 1\nconnections:\n  s: {{url: '{url}'}}\n"
        + "".join(f"  {kind}: {{driver: {kind}, database: {_COPIES[kind]}}}\n" for kind in kinds)
        + "migrations:\n"
        + "".join(f"  to-{kind}: {{from: s, to: {kind}}}\n" for kind in kinds)
    )
    applied = run_cli(capsys, "apply", "--auto-approve", manifest)
    assert applied.code == 0, applied.text
    assert run_cli(capsys, "plan", "--detailed-exitcode", manifest).code == 0
    scheme = {"sqlite": "sqlite", "duckdb": "duckdb+dsdb"}
    return {kind: f"{scheme[kind]}:///{tmp_path / _COPIES[kind]}" for kind in kinds}


@pytest.mark.parametrize(
    ("kind", "month"),
    [
        ("duckdb", "1 month 2 days"),
        pytest.param("postgresql", "1 mon 2 days", marks=pytest.mark.postgres),
    ],
)
def test_a_type_kept_as_text_lands_as_its_engine_writes_it(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    month: str,
) -> None:
    """An interval is read as its text: its driver's value says 30 days for a month."""
    source = database(request, tmp_path, kind)
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE spans (id INTEGER PRIMARY KEY, span INTERVAL)")
        conn.exec_driver_sql("INSERT INTO spans VALUES (1, INTERVAL '1 month 2 days'), (2, NULL)")

    copies = _copied_into(capsys, tmp_path, source, "sqlite")

    assert table_rows(copies["sqlite"], "spans") == [(1, month), (2, None)]


@pytest.mark.mariadb
def test_mariadb_sets_years_and_bits_land_as_what_they_hold(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SET's value is its members joined by commas (it was typed as one label's varchar), a
    YEAR a number, a BIT a flag or a number (its bytes were taken for text)."""
    source = database(request, tmp_path, "mariadb")
    with source.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE kinds (id INT PRIMARY KEY, tags SET('a', 'b'), y YEAR, "
            "flag BIT(1), mask BIT(8))"
        )
        conn.exec_driver_sql(
            "INSERT INTO kinds VALUES (1, 'a,b', 2024, b'1', b'101'), (2, NULL, NULL, NULL, NULL)"
        )

    copies = _copied_into(capsys, tmp_path, source, "sqlite", "duckdb")

    nulls = (2, None, None, None, None)
    assert table_rows(copies["sqlite"], "kinds") == [(1, "a,b", 2024, 1, 5), nulls]
    assert table_rows(copies["duckdb"], "kinds") == [(1, "a,b", 2024, True, 5), nulls]


@pytest.mark.mariadb
def test_mariadb_unsigned_integers_land_whole_in_a_type_that_holds_them(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each was typed as its signed type, which holds half its values: the largest failed
    the copy half-way."""
    source = database(request, tmp_path, "mariadb")
    with source.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE counters (id BIGINT UNSIGNED PRIMARY KEY, port SMALLINT UNSIGNED, "
            "hits INT UNSIGNED, tiny TINYINT UNSIGNED, mid MEDIUMINT UNSIGNED)"
        )
        conn.exec_driver_sql(
            "INSERT INTO counters VALUES (18446744073709551615, 65535, 4294967295, 255, "
            "16777215), (1, 0, 0, 0, 0)"
        )

    copies = _copied_into(capsys, tmp_path, source, "duckdb")

    assert table_rows(copies["duckdb"], "counters") == [
        (Decimal(1), 0, 0, 0, 0),
        (Decimal(18446744073709551615), 65535, 4294967295, 255, 16777215),
    ]
