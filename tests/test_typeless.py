"""SQLite columns declared without a type: each value keeps its storage class into SQLite, and
takes the type its column's classes call for into every typed engine, or the plan refuses."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import dsdb_plan as dsdb
from dsdb_plan.dbschema import ColumnSchema, TableSchema, reflect_tables
from dsdb_plan.engines import engine_for
from dsdb_plan.errors import DsdbError, PlanError
from dsdb_plan.migrate.digest import SubsetDigest, _column_framer, _framer
from dsdb_plan.migrate.subset import select_tables
from dsdb_plan.migrate.verify import verify_table
from dsdb_plan.portable import StoredClasses
from dsdb_plan.typeless import for_engine, infer, observe
from tests.helpers import run_cli, sqlite_url
from tests.servers import ServerDatabase

ENGINES = [
    "sqlite",
    "duckdb",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]

# -- the decision (pure) ---------------------------------------------------------------------


def _stored(*classes: str, fit: bool = True) -> StoredClasses:
    return StoredClasses(frozenset(classes), integers_fit_double=fit)


@pytest.mark.parametrize(
    ("stored", "kind", "why"),
    [
        (_stored(), "text", "holds only NULLs: created as text"),
        (_stored("integer"), "bigint", "holds only integers: created as bigint"),
        (_stored("integer", fit=False), "bigint", "holds only integers: created as bigint"),
        (_stored("real"), "double", "holds only reals: created as double"),
        (
            _stored("integer", "real"),
            "double",
            "holds integers and reals (each exact in a double): created as double",
        ),
        (_stored("text"), "text", "holds only texts: created as text"),
        (_stored("blob"), "binary", "holds only blobs: created as binary"),
    ],
)
def test_one_type_that_holds_every_value_exactly(
    stored: StoredClasses, kind: str, why: str
) -> None:
    made = infer("t", ColumnSchema("a", "typeless", stored=stored), "PostgreSQL")
    assert made.column == ColumnSchema("a", kind)
    assert made.reason == f"column 'a' has no declared type and {why}"


@pytest.mark.parametrize(
    ("stored", "found"),
    [
        (_stored("integer", "text"), "integers and texts"),
        (_stored("real", "blob"), "reals and blobs"),
        (_stored("text", "blob"), "texts and blobs"),
        (_stored("integer", "real", "text", "blob"), "integers, reals, texts and blobs"),
        (
            _stored("integer", "real", fit=False),
            "integers and reals, and integers beyond ±2**53 that a double would round",
        ),
    ],
)
def test_classes_no_one_type_holds_are_refused_naming_them(
    stored: StoredClasses, found: str
) -> None:
    column = ColumnSchema("a", "typeless", stored=stored)
    with pytest.raises(PlanError) as raised:
        infer("t", column, "MariaDB")
    assert raised.value.message == (
        f"table 't': column 'a' has no declared type and holds {found}: "
        "no MariaDB column type holds them all"
    )


def test_sqlite_keeps_typeless_columns_and_typed_engines_type_each() -> None:
    schema = TableSchema(
        "t",
        (
            ColumnSchema("id", "bigint", nullable=False),
            ColumnSchema("a", "typeless", stored=_stored("integer")),
            ColumnSchema("m", "typeless", stored=_stored("integer", "text")),
            ColumnSchema("z", "typeless", stored=_stored("blob", "real")),
        ),
        primary_key=("id",),
    )
    assert for_engine(schema, engine_for("sqlite")) == (schema, ())
    with pytest.raises(PlanError) as raised:
        for_engine(schema, engine_for("postgresql"), remedy="do this")
    assert raised.value.message.splitlines() == [
        "table 't': column 'm' has no declared type and holds integers and texts: "
        "no PostgreSQL column type holds them all",
        "table 't': column 'z' has no declared type and holds reals and blobs: "
        "no PostgreSQL column type holds them all",
        "do this",
    ]
    kept = TableSchema("t", schema.columns[:2], primary_key=("id",))
    typed, reasons = for_engine(kept, engine_for("duckdb"))
    assert [c.type for c in typed.columns] == ["bigint", "bigint"]
    assert reasons == (
        "column 'a' has no declared type and holds only integers: created as bigint",
    )


def test_what_a_column_holds_travels_with_its_schema() -> None:
    column = ColumnSchema("a", "typeless", stored=_stored("integer", "real", fit=False))
    again = ColumnSchema.from_dict(column.to_dict())
    assert again.stored == column.stored
    assert "stored" not in ColumnSchema("b", "text").to_dict()
    with pytest.raises(DsdbError, match="unknown storage class 'numeric'"):
        ColumnSchema.from_dict({**column.to_dict(), "stored": {"classes": ["numeric"]}})


# -- observation and the digest -------------------------------------------------------------


def _source(path: Path, rows: list[tuple[Any, ...]], columns: str = "a, b") -> sa.Engine:
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE t (id INTEGER PRIMARY KEY, {columns})")
        marks = ", ".join("?" * len(rows[0]))
        db.executemany(f"INSERT INTO t VALUES ({marks})", rows)
    db.close()
    return sa.create_engine(sqlite_url(path))


def test_one_query_finds_the_classes_of_every_typeless_column(tmp_path: Path) -> None:
    rows = [(1, 1, None, 2**53), (2, "x", None, 2.5), (3, 1.5, None, -(2**53)), (4, b"\0", None, 0)]
    source = _source(tmp_path / "s.db", rows, "a, empty, wide")
    with source.connect() as conn:
        (schema,) = reflect_tables(conn, ["t"])
        assert [c.type for c in schema.columns] == ["bigint", "typeless", "typeless", "typeless"]
        statements: list[str] = []
        sa.event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
        seen = observe(conn, schema)
    assert len(statements) == 1, statements
    assert seen.column("a").stored == _stored("integer", "real", "text", "blob")
    assert seen.column("empty").stored == _stored()
    assert seen.column("wide").stored == _stored("integer", "real")
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute("INSERT INTO t VALUES (5, NULL, NULL, ?)", (2**53 + 1,))
    db.close()
    with source.connect() as conn:
        assert observe(conn, schema).column("wide").stored == _stored("integer", "real", fit=False)


def _digest(column: ColumnSchema, values: list[Any]) -> str:
    digest = SubsetDigest(TableSchema("t", (column,)), [column.name])
    digest.add([(value,) for value in values])
    return digest.result().checksum


def test_the_digest_tells_every_storage_class_of_a_value_apart() -> None:
    typeless = ColumnSchema("a", "typeless")
    digests = {_digest(typeless, [value]) for value in (1, 1.0, "1", b"1", "integer:1")}
    assert len(digests) == 5
    assert _digest(typeless, [1, "x\x1fy"]) == _digest(typeless, ["x\x1fy", 1])


def test_a_typeless_column_is_written_a_class_at_a_time_as_value_by_value() -> None:
    typeless = ColumnSchema("a", "typeless")
    values = [1, -(2**63), 1.5, 1e22, 0.1, "x\x1fy", "", b"\x00\xff", None, True]
    by_value = list(map(_framer(typeless), values))
    assert _column_framer(typeless)(values) == by_value
    assert by_value[:3] == ["integer:1", f"integer:{-(2**63)}", "real:1.5"]


@pytest.mark.parametrize(
    ("kind", "value", "changed"),
    [
        ("bigint", 1, "1"),
        ("double", 1.5, "1.5"),
        ("decimal", 7, "7"),
        ("text", "1", 1),
        ("varchar", "2.5", 2.5),
    ],
)
def test_a_value_whose_class_a_copy_changed_does_not_digest_as_it(
    kind: str, value: Any, changed: Any
) -> None:
    column = ColumnSchema("a", kind)
    assert _digest(column, [value]) != _digest(column, [changed])


# -- migrations and backups, for real -------------------------------------------------------

#: Rows of a table whose typeless columns each hold what one type holds exactly.
_TYPED_ROWS = [
    (1, 1, 1.5, 1, "x", b"\x00\x01", None),
    (2, 2**62, 2.0, 2.5, "3", b"\xff", None),
    (3, None, None, -7, "", None, None),
    (4, -(2**63), -0.25, 2**53, "é \\ \x1f", b"", None),
]
_TYPED_COLUMNS = "i, r, ir, s, b, n"
_TYPES = {"id": "bigint", "i": "bigint", "r": "double", "ir": "double", "s": "text"}
_TYPES |= {"b": "binary", "n": "text"}
_CLASSES = {"i": int, "r": float, "ir": float, "s": str, "b": bytes}
#: A column holding every class, and text that looks like a number: only SQLite holds it.
_MIXED = [1, "1", 1.0, b"1", None]


def _target_url(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> str:
    if kind == "sqlite":
        return sqlite_url(tmp_path / "target.db")
    if kind == "duckdb":
        return f"duckdb+dsdb:///{tmp_path / 'target.duckdb'}"
    server: ServerDatabase = request.getfixturevalue(
        "postgres_db" if kind == "postgresql" else "mariadb_db"
    )
    server.reset()
    return server.url_string


def _typeof(path: Path, columns: str) -> list[tuple[Any, ...]]:
    selected = ", ".join(f"{c}, typeof({c})" for c in columns.split(", "))
    with sqlite3.connect(path) as db:
        found = db.execute(f"SELECT id, {selected} FROM t ORDER BY id").fetchall()
    db.close()
    return found


def _landed(url: str) -> tuple[dict[str, str], list[tuple[Any, ...]]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        (schema,) = reflect_tables(conn, ["t"])
        rows = conn.execute(sa.text("SELECT * FROM t ORDER BY id")).all()
    engine.dispose()
    found = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]
    return {c.name: c.type for c in schema.columns}, found


def _typed_source_and_target(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> tuple[str, list[tuple[Any, ...]], str, dsdb.ConnectionManager]:
    """The typed rows (and, into SQLite, a column of mixed classes) in a SQLite source, the
    target's URL, and a manager holding both."""
    columns = _TYPED_COLUMNS + (", m" if kind == "sqlite" else "")
    mixed = (lambda i: (_MIXED[i % len(_MIXED)],)) if kind == "sqlite" else (lambda i: ())
    rows = [(*row, *mixed(i)) for i, row in enumerate(_TYPED_ROWS)]
    _source(tmp_path / "source.db", rows, columns)
    url = _target_url(request, tmp_path, kind)
    mngr = dsdb.ConnectionManager(
        {"src": {"url": sqlite_url(tmp_path / "source.db")}, "dst": {"url": url}}, user="t"
    )
    return columns, rows, url, mngr


@pytest.mark.parametrize("kind", ENGINES)
def test_a_migration_keeps_every_value_and_its_class(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    columns, rows, url, mngr = _typed_source_and_target(request, tmp_path, kind)
    try:
        (first,) = mngr.migrate("src", "dst")
        landed = _landed(url)
        (again,) = mngr.migrate("src", "dst")
    finally:
        mngr.close()
    assert first.rows_copied == len(rows)
    assert again.now.rows == 0 and _landed(url) == landed  # a re-apply changes nothing
    types, found = landed
    if kind == "sqlite":
        assert set(types.values()) == {"bigint", "typeless"}
        assert _typeof(tmp_path / "target.db", columns) == _typeof(tmp_path / "source.db", columns)
        return
    assert types == _TYPES
    expected = [
        (key, i, r, None if ir is None else float(ir), s, b, n)
        for key, i, r, ir, s, b, n in _TYPED_ROWS
    ]
    assert found == expected
    for row in found:
        for name, value in zip(_TYPES, row, strict=True):
            assert value is None or type(value) is _CLASSES.get(name, int), (name, value)


def _manifest(tmp_path: Path, target: str, tables: str = "") -> Path:
    path = tmp_path / "dsdb.yaml"
    path.write_text(
        "version: 1\nconnections:\n"
        f"  local: {{driver: sqlite, database: {tmp_path / 'source.db'}}}\n"
        f"  dst: {{url: '{target}'}}\n"
        f"migrations:\n  copy:\n    from: local\n    to: dst\n{tables}"
    )
    return path


@pytest.mark.postgres
def test_the_plan_shows_each_inferred_type_and_refuses_mixed_classes(
    capsys: Any, tmp_path: Path, postgres_db: ServerDatabase
) -> None:
    postgres_db.reset()
    _source(tmp_path / "source.db", [(1, 1, 2.5, "x"), (2, 2, 3, b"y")], "n, ir, mixed")
    project = _manifest(tmp_path, postgres_db.url_string)
    refused = run_cli(capsys, "plan", project)
    assert refused.code == 1 and "Traceback" not in refused.text
    assert refused.err.splitlines()[1:] == [
        "  migration.copy: table 't': column 'mixed' has no declared type and holds texts and "
        "blobs: no PostgreSQL column type holds them all",
        "  migration.copy: make such a column's values one storage class in the source "
        "(UPDATE t SET c = CAST(c AS TEXT) keeps their text), or give it a declared type; "
        "or leave it out of the copy (columns: under the table)",
    ]
    tables = "    tables:\n      t: {columns: [id, n, ir]}\n"
    plan = run_cli(capsys, "plan", _manifest(tmp_path, postgres_db.url_string, tables))
    assert plan.code == 0, plan.text
    assert (
        "t → dst.t: 2 rows (upsert, new table; "
        "column 'n' has no declared type and holds only integers: created as bigint; "
        "column 'ir' has no declared type and holds integers and reals (each exact in a "
        "double): created as double)"
    ) in plan.out


@pytest.mark.parametrize(("value", "matched"), [(1, [1, 3]), ("1", [2]), (1.5, [4])])
def test_a_filter_compares_as_sqlite_does_in_a_column_without_affinity(
    capsys: Any, tmp_path: Path, value: Any, matched: list[int]
) -> None:
    # No affinity: 1 and '1' differ, and 1 equals 1.0 as SQLite compares numbers.
    _source(tmp_path / "source.db", [(1, 1), (2, "1"), (3, 1.0), (4, 1.5), (5, b"1")], "a")
    with sqlite3.connect(tmp_path / "source.db") as db:
        keys = [k for (k,) in db.execute("SELECT id FROM t WHERE a = ? ORDER BY id", (value,))]
    db.close()
    assert keys == matched
    tables = f"    tables:\n      t: {{where: {{a: {value!r}}}}}\n"
    project = _manifest(tmp_path, sqlite_url(tmp_path / "target.db"), tables)
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    assert [row[0] for row in _typeof(tmp_path / "target.db", "a")] == matched
    assert run_cli(capsys, "plan", project, "--detailed-exitcode").code == 0


def test_verification_fails_a_copy_that_changed_a_values_class(tmp_path: Path) -> None:
    # A TEXT column turns 1 into '1' (its affinity): SQLite's own fingerprint differs, and
    # the portable digest, of the values as each side reads them, must not call them equal.
    _source(tmp_path / "source.db", [(1, 1), (2, "x")], "a")
    with sqlite3.connect(tmp_path / "target.db") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT)")
        db.execute("INSERT INTO t SELECT * FROM (VALUES (1, 1), (2, 'x'))")
    db.close()
    source = sa.create_engine(sqlite_url(tmp_path / "source.db"))
    target = sa.create_engine(sqlite_url(tmp_path / "target.db"))
    (selection,) = select_tables(source, None, "none")
    with source.connect() as source_conn, target.connect() as target_conn:
        verdict = verify_table(source_conn, selection, target_conn, "t", exact=True)
    assert not verdict.ok and verdict.message == "target t has all 2 rows but content differs"
    assert _typeof(tmp_path / "target.db", "a") == [(1, "1", "text"), (2, "x", "text")]


def test_the_plan_refuses_a_typed_sqlite_column_for_a_typeless_one(
    capsys: Any, tmp_path: Path
) -> None:
    _source(tmp_path / "source.db", [(1, 1), (2, "x")], "a")
    with sqlite3.connect(tmp_path / "target.db") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT)")
    db.close()
    plan = run_cli(capsys, "plan", _manifest(tmp_path, sqlite_url(tmp_path / "target.db")))
    assert plan.code == 1 and "Traceback" not in plan.text
    assert (
        "table 't': column 'a' is text in the target but has no declared type in the source"
    ) in plan.err


@pytest.mark.postgres
def test_the_plan_refuses_numbers_into_an_existing_text_column(
    capsys: Any, tmp_path: Path, postgres_db: ServerDatabase
) -> None:
    # They would land as text, which verification tells from the numbers they were.
    postgres_db.reset()
    _source(tmp_path / "source.db", [(1, 1)], "a INTEGER")
    with postgres_db.engine().begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id bigint PRIMARY KEY, a text)")
    plan = run_cli(capsys, "plan", _manifest(tmp_path, postgres_db.url_string))
    assert plan.code == 1
    assert "column 'a' is text in the target but bigint in the source" in plan.err


@pytest.mark.parametrize("kind", ENGINES)
def test_a_backup_restores_as_a_migration_copies(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    columns, _rows, url, mngr = _typed_source_and_target(request, tmp_path, kind)
    mngr.backup_root = tmp_path / "backups"
    try:
        mngr.backup("src")
        mngr.restore("src", "dst")
    finally:
        mngr.close()
    types, found = _landed(url)
    if kind == "sqlite":
        assert _typeof(tmp_path / "target.db", columns) == _typeof(tmp_path / "source.db", columns)
        return
    assert types == _TYPES
    assert found == [
        (key, i, r, None if ir is None else float(ir), s, b, n)
        for key, i, r, ir, s, b, n in _TYPED_ROWS
    ]


@pytest.mark.postgres
def test_a_backup_of_classes_no_type_holds_is_refused_by_the_restore_plan(
    capsys: Any, tmp_path: Path, postgres_db: ServerDatabase
) -> None:
    postgres_db.reset()
    _source(tmp_path / "source.db", [(1, 1), (2, "1")], "a")
    project = tmp_path / "dsdb.yaml"
    project.write_text(
        "version: 1\nconnections:\n"
        f"  local: {{driver: sqlite, database: {tmp_path / 'source.db'}}}\n"
        f"  dst: {{url: '{postgres_db.url_string}'}}\n"
        "backups:\n  nightly: {connection: local}\n"
    )
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    project.write_text(
        project.read_text() + "restores:\n  back:\n    backup: nightly\n    to: dst\n"
    )
    plan = run_cli(capsys, "plan", project)
    assert plan.code == 1 and "Traceback" not in plan.text
    assert (
        "restore.back: table 't': column 'a' has no declared type and holds integers and "
        "texts: no PostgreSQL column type holds them all"
    ) in plan.err
    assert "then take a new backup" in plan.err


@pytest.mark.postgres
def test_integers_and_reals_go_to_postgresql_in_whole_columns(
    tmp_path: Path, postgres_db: ServerDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The column path reads the integers of a column typed double as doubles, as the row
    # path converts them, and digests them alike (the copy is verified).
    from dsdb_plan.migrate import arrow_copy

    postgres_db.reset()
    values = [1, 2.5, -(2**53), 2**53, None, 0, -0.125]
    _source(tmp_path / "source.db", list(enumerate(values)), "a")
    prepared: list[int] = []
    real = arrow_copy.prepare

    def counted(*args: Any) -> arrow_copy.Batch:
        batch = real(*args)
        prepared.append(batch.rows)
        return batch

    monkeypatch.setattr(arrow_copy, "prepare", counted)
    mngr = dsdb.ConnectionManager(
        {
            "src": {"url": sqlite_url(tmp_path / "source.db")},
            "dst": {"url": postgres_db.url_string},
        },
        user="t",
    )
    try:
        (outcome,) = mngr.migrate("src", "dst", batch_size=4)
    finally:
        mngr.close()
    assert outcome.rows_copied == len(values) and prepared == [4, 3]
    types, found = _landed(postgres_db.url_string)
    assert types["a"] == "double"
    assert found == [(i, None if v is None else float(v)) for i, v in enumerate(values)]
    assert all(isinstance(v, float) for _, v in found if v is not None)
