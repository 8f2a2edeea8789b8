"""The engines: their rules as values (no server), and each fidelity bug of issue 13 on the real
servers, through `driver: mysql` and `driver: mariadb` alike."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as postgresql_dialect

import dsdb_plan as dsdb
from dsdb_plan.dbschema import ColumnSchema, IndexSchema, portable_type, reflect_tables
from dsdb_plan.engines import UnknownEngineError, engine_for
from dsdb_plan.engines.base import portable_default
from dsdb_plan.engines.mysql import is_exact_collation
from dsdb_plan.errors import PlanError
from tests.helpers import MYSQL_DRIVERS, run_cli, through
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
