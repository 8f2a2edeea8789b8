"""Portable schemas: type mapping, reflection order, creation traps, sequences, hostile names."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import sqlalchemy as sa

from dsdb_plan.dbschema import (
    ColumnSchema,
    ForeignKeySchema,
    IndexSchema,
    TableSchema,
    add_foreign_keys,
    advance_sequences,
    create_indexes,
    create_tables,
    deferred_foreign_keys,
    drop_tables,
    reflect_tables,
    reflected_columns,
    sort_tables,
    sqlite_portable_type,
)
from dsdb_plan.errors import DsdbError
from tests.servers import ServerDatabase

# MySQL/MariaDB identifiers are limited to the Basic Multilingual Plane: no emoji there.
HOSTILE_TABLE = 'order "items"; drop ☃ 日本'
HOSTILE_COLUMNS = ("from", "a b", 'quote"d', "semi;colon", "ünï", "back`tick", "per%cent")


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> sa.Engine:
    """An empty database of each kind (the server ones skip without a server)."""
    if request.param == "sqlite":
        return sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    server: ServerDatabase = request.getfixturevalue(f"{request.param}_db")
    return server.engine()


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("REAL", ColumnSchema("", "double")),
        ("DOUBLE", ColumnSchema("", "double")),
        ("double precision", ColumnSchema("", "double")),
        ("FLOAT", ColumnSchema("", "double")),
        ("INTEGER", ColumnSchema("", "bigint")),  # SQLite integers are 64-bit
        ("INT", ColumnSchema("", "bigint")),
        ("BIGINT", ColumnSchema("", "bigint")),
        ("NUMERIC(10,2)", ColumnSchema("", "decimal", precision=10, scale=2)),
        ("DECIMAL", ColumnSchema("", "decimal")),
        ("TEXT", ColumnSchema("", "text")),
        ("VARCHAR(20)", ColumnSchema("", "varchar", length=20)),
        ("BLOB", ColumnSchema("", "binary")),
        ("BOOLEAN", ColumnSchema("", "boolean")),
        ("DATE", ColumnSchema("", "date")),
        ("DATETIME", ColumnSchema("", "datetime")),
        ("TIMESTAMP", ColumnSchema("", "datetime")),
        ("TIMESTAMP WITH TIME ZONE", ColumnSchema("", "datetime", timezone=True)),
        ("TIME", ColumnSchema("", "time")),
        ("JSON", ColumnSchema("", "json")),
        ("", ColumnSchema("", "typeless")),  # no affinity: each value keeps its class
        ("WHATEVER", ColumnSchema("", "decimal")),  # SQLite's NUMERIC affinity
    ],
)
def test_sqlite_declared_types_map_to_portable_types(declared: str, expected: ColumnSchema) -> None:
    assert sqlite_portable_type(declared) == expected


def _family() -> list[TableSchema]:
    parent = TableSchema(
        "parent",
        (
            ColumnSchema("id", "integer", nullable=False, autoincrement=True),
            ColumnSchema("code", "text"),
        ),
        primary_key=("id",),
        indexes=(IndexSchema("ix_parent_code", ("code",), unique=True),),
    )
    child = TableSchema(
        "child",
        (
            ColumnSchema("id", "integer", nullable=False),
            ColumnSchema("parent_id", "integer"),
            ColumnSchema("ratio", "double"),
        ),
        primary_key=("id",),
        foreign_keys=(ForeignKeySchema("fk_child_parent", ("parent_id",), "parent", ("id",)),),
    )
    return [child, parent]


def test_table_schema_round_trips_through_json() -> None:
    for table in _family():
        assert TableSchema.from_dict(table.to_dict()) == table


def test_sort_puts_parents_first_and_defers_only_cycle_keys() -> None:
    assert [t.name for t in sort_tables(_family())] == ["parent", "child"]
    x = TableSchema(
        "x",
        (ColumnSchema("id", "integer"),),
        ("id",),
        (ForeignKeySchema(None, ("id",), "y", ("id",)),),
    )
    y = TableSchema(
        "y",
        (ColumnSchema("id", "integer"),),
        ("id",),
        (ForeignKeySchema(None, ("id",), "x", ("id",)),),
    )
    ordered = sort_tables([y, x])
    assert [t.name for t in ordered] == ["x", "y"]
    assert [(t.name, fk.ref_table) for t, fk in deferred_foreign_keys(ordered)] == [("x", "y")]


def test_reflect_names_unknown_tables(engine: sa.Engine) -> None:
    create_tables(engine, _family())
    with pytest.raises(DsdbError, match="'nope'"):
        reflect_tables(engine, ["parent", "nope"])


def test_create_then_reflect_keeps_keys_indexes_and_types(engine: sa.Engine) -> None:
    create_tables(engine, _family())
    parent, child = reflect_tables(engine)
    assert (parent.name, child.name) == ("parent", "child")
    assert parent.primary_key == ("id",) and parent.column("id").autoincrement
    assert [(i.columns, i.unique) for i in parent.indexes] == [(("code",), True)]
    assert [(fk.columns, fk.ref_table, fk.ref_columns) for fk in child.foreign_keys] == [
        (("parent_id",), "parent", ("id",))
    ]
    assert child.column("ratio").type == "double"
    if engine.dialect.name != "sqlite":
        assert child.foreign_keys[0].name == "fk_child_parent"


@pytest.mark.postgres
def test_sqlite_real_becomes_double_precision_in_postgresql(
    tmp_path: Path, postgres_db: ServerDatabase
) -> None:
    source = sa.create_engine(f"sqlite:///{tmp_path / 's.db'}")
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE m (id INTEGER PRIMARY KEY, r REAL, f FLOAT)")
    target = postgres_db.engine()
    create_tables(target, reflect_tables(source))
    with target.connect() as conn:
        types = dict(
            conn.execute(
                sa.text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = 'm'"
                )
            ).all()
        )
    assert types == {"id": "bigint", "r": "double precision", "f": "double precision"}


@pytest.mark.mariadb
def test_mariadb_gets_double_and_indexable_text_keys(
    tmp_path: Path, mariadb_db: ServerDatabase
) -> None:
    source = sa.create_engine(f"sqlite:///{tmp_path / 's.db'}")
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE k (code TEXT PRIMARY KEY, note TEXT, r REAL)")
        conn.exec_driver_sql("CREATE INDEX ix_note ON k (note)")
    target = mariadb_db.engine()
    create_tables(target, reflect_tables(source))
    with target.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT column_name, column_type FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND table_name = 'k'"
            )
        ).all()
    assert dict(rows) == {"code": "varchar(255)", "note": "varchar(255)", "r": "double"}


def test_cycles_are_created_and_dropped(engine: sa.Engine) -> None:
    x = TableSchema(
        "x",
        (ColumnSchema("id", "integer", nullable=False), ColumnSchema("y_id", "integer")),
        ("id",),
        (ForeignKeySchema("fk_x_y", ("y_id",), "y", ("id",)),),
    )
    y = TableSchema(
        "y",
        (ColumnSchema("id", "integer", nullable=False), ColumnSchema("x_id", "integer")),
        ("id",),
        (ForeignKeySchema("fk_y_x", ("x_id",), "x", ("id",)),),
    )
    create_tables(engine, [y, x])
    reflected = {t.name: t for t in reflect_tables(engine)}
    assert [fk.ref_table for fk in reflected["x"].foreign_keys] == ["y"]
    assert [fk.ref_table for fk in reflected["y"].foreign_keys] == ["x"]
    assert sorted(drop_tables(engine, ["x", "y", "absent"])) == ["x", "y"]
    assert sa.inspect(engine).get_table_names() == []


def test_a_key_added_to_loaded_rows_is_refused_while_a_row_points_nowhere(
    engine: sa.Engine,
) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite cannot add a key to a table")
    columns = (
        ColumnSchema("id", "integer", nullable=False),
        ColumnSchema("parent_id", "integer"),
        ColumnSchema("up", "integer"),
    )
    parent = TableSchema("parent", columns[:1], ("id",))
    keys = (
        ForeignKeySchema("fk_child_parent", ("parent_id",), "parent", ("id",)),
        ForeignKeySchema("fk_child_up", ("up",), "child", ("id",)),
    )
    child = TableSchema("child", columns, ("id",), keys)
    create_tables(engine, [parent, dataclasses.replace(child, foreign_keys=())])
    with engine.begin() as conn:
        conn.execute(sa.table("parent", sa.column("id")).insert(), [{"id": 1}])
        rows = [{"id": 1, "parent_id": 1, "up": None}, {"id": 2, "parent_id": None, "up": 1}]
        rows.append({"id": 3, "parent_id": 9, "up": 4})  # to no parent, to no child
        conn.execute(sa.table("child", *map(sa.column, ("id", "parent_id", "up"))).insert(), rows)
    for fk in keys:
        with pytest.raises((DsdbError, sa.exc.IntegrityError)):
            add_foreign_keys(engine, [(child, fk)])
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM child WHERE id = 3")
    add_foreign_keys(engine, [(child, fk) for fk in keys])  # NULLs point nowhere and pass
    (reflected,) = reflect_tables(engine, ["child"])
    assert sorted(fk.ref_table for fk in reflected.foreign_keys) == ["child", "parent"]
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO child (id, parent_id) VALUES (5, 7)")  # enforced


def test_hostile_identifiers_work(engine: sa.Engine) -> None:
    parent = TableSchema(
        "select",
        (ColumnSchema("id", "integer", nullable=False, autoincrement=True),),
        ("id",),
    )
    hostile = TableSchema(
        HOSTILE_TABLE,
        (
            ColumnSchema("id", "integer", nullable=False, autoincrement=True),
            ColumnSchema("select id", "integer"),
            *(ColumnSchema(name, "varchar", length=40) for name in HOSTILE_COLUMNS),
        ),
        ("id",),
        (ForeignKeySchema("fk; drop", ("select id",), "select", ("id",)),),
        (IndexSchema('ix "odd"', ("a b", "ünï")),),
    )
    create_tables(engine, [hostile, parent], with_indexes=False)
    create_indexes(engine, [hostile])
    reflected = {t.name: t for t in reflect_tables(engine)}
    assert reflected[HOSTILE_TABLE].column_names == hostile.column_names
    with engine.connect() as conn:
        names = [c["name"] for c in reflected_columns(sa.inspect(conn), HOSTILE_TABLE)]
        assert tuple(names) == hostile.column_names  # MariaDB's doubled backticks undone
    assert reflected[HOSTILE_TABLE].foreign_keys[0].ref_table == "select"
    assert ("a b", "ünï") in [i.columns for i in reflected[HOSTILE_TABLE].indexes]
    assert drop_tables(engine, [HOSTILE_TABLE, "select"]) == [HOSTILE_TABLE, "select"]


def test_percent_in_names_survives_statements_sent_to_the_driver(engine: sa.Engine) -> None:
    """psycopg and PyMySQL read a lone `%` as a placeholder even without parameters."""
    x = TableSchema(
        "x%s",
        (
            ColumnSchema("id", "integer", nullable=False, autoincrement=True),
            ColumnSchema("y_id", "integer"),
        ),
        ("id",),
        (ForeignKeySchema("fk%d", ("y_id",), "y%(y)s", ("id",)),),
    )
    y = TableSchema(
        "y%(y)s",
        (ColumnSchema("id", "integer", nullable=False), ColumnSchema("x_id", "integer")),
        ("id",),
        (ForeignKeySchema("fk%", ("x_id",), "x%s", ("id",)),),
    )
    create_tables(engine, [x, y])
    rows = sa.table(x.name, sa.column("id"), sa.column("y_id"))
    with engine.begin() as conn:
        conn.execute(sa.insert(rows).values(id=41))
    advance_sequences(engine, x)
    with engine.begin() as conn:
        conn.execute(sa.insert(rows).values(y_id=None))
        assert sorted(conn.execute(sa.select(rows.c.id)).scalars()) == [41, 42]
    assert sorted(drop_tables(engine, [x.name, y.name])) == ["x%s", "y%(y)s"]
    assert sa.inspect(engine).get_table_names() == []


def test_advance_sequences_lets_the_next_insert_succeed(engine: sa.Engine) -> None:
    table = TableSchema(
        "seq",
        (
            ColumnSchema("id", "bigint", nullable=False, autoincrement=True),
            ColumnSchema("v", "text"),
        ),
        ("id",),
    )
    create_tables(engine, [table])
    rows = sa.table("seq", sa.column("id"), sa.column("v"))
    with engine.begin() as conn:
        conn.execute(sa.insert(rows), [{"id": 1, "v": "a"}, {"id": 41, "v": "b"}])
    advance_sequences(engine, table)
    with engine.begin() as conn:
        conn.execute(sa.insert(rows).values(v="new"))
        assert conn.execute(sa.select(rows.c.id).where(rows.c.v == "new")).scalar() == 42
