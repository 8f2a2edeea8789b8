"""Subsets that stay consistent: follow parents and children, on SQLite, PostgreSQL, MariaDB.

Each selection is copied into a SQLite target by a plain insert, with its foreign keys, and
the target is checked with LEFT JOIN ... IS NULL queries for dangling references.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan.dbschema import (
    ColumnSchema,
    ForeignKeySchema,
    TableSchema,
    create_tables,
    reflect_tables,
)
from dsdb_plan.errors import PlanError
from dsdb_plan.migrate.integrity import count_dangling, resolved_only
from dsdb_plan.migrate.subset import (
    TableSelection,
    count_rows,
    select_subset,
    select_tables,
)
from dsdb_plan.models import MigrationTable
from dsdb_plan.values import row_converter
from tests.helpers import database, fill

KINDS = ["sqlite", "postgresql", "mariadb"]


def _col(name: str, kind: str = "integer", nullable: bool = True) -> ColumnSchema:
    return ColumnSchema(name, kind, nullable=nullable, length=20 if kind == "varchar" else None)


def _fk(columns: Sequence[str], table: str, ref: Sequence[str]) -> ForeignKeySchema:
    return ForeignKeySchema(None, tuple(columns), table, tuple(ref))


# makers <- planes <- flights -> airlines: three levels of parents above flights.
MAKERS = TableSchema("makers", (_col("id", nullable=False), _col("name", "varchar")), ("id",))
PLANES = TableSchema(
    "planes",
    (_col("tail", "varchar", False), _col("maker_id")),
    ("tail",),
    (_fk(["maker_id"], "makers", ["id"]),),
)
AIRLINES = TableSchema("airlines", (_col("carrier", "varchar", False),), ("carrier",))
FLIGHTS = TableSchema(
    "flights",
    (_col("id", nullable=False), _col("carrier", "varchar"), _col("tail", "varchar"), _col("m")),
    ("id",),
    (_fk(["carrier"], "airlines", ["carrier"]), _fk(["tail"], "planes", ["tail"])),
)
FLEET = {
    "makers": [(1, "boeing"), (2, "airbus"), (3, "embraer"), (4, "unused")],
    "planes": [("N1", 1), ("N2", 2), ("N3", 3), ("N4", None), ("N5", 1)],
    "airlines": [("UA",), ("AA",), ("DL",)],
    "flights": [
        (1, "UA", "N1", 1),
        (2, "UA", "N4", 2),
        (3, "AA", "N2", 1),
        (4, "DL", "N3", 3),
        (5, "UA", None, 1),
        (6, "AA", "N5", 2),
    ],
}


@pytest.fixture(params=KINDS)
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    engine = database(request, tmp_path, request.param)
    for schema in (MAKERS, PLANES, AIRLINES, FLIGHTS):
        fill(engine, schema, FLEET[schema.name])
    yield engine
    engine.dispose()


def copy_selection(
    source: sa.Engine,
    selections: Sequence[TableSelection],
    path: Path,
    empty: Sequence[TableSchema] = (),
) -> sa.Engine:
    """Copy the selected rows into a new SQLite database with the same foreign keys.

    `empty` tables are created too, without rows.
    """
    target = sa.create_engine(f"sqlite:///{path}")
    create_tables(target, empty)
    create_tables(
        target, [s.schema for s in selections], rename={s.name: s.target for s in selections}
    )
    with source.connect() as src, target.begin() as dst:
        for selection in selections:
            convert = row_converter(selection.schema, source.dialect.name, "sqlite")
            table = sa.table(selection.target, *(sa.column(c) for c in selection.columns))
            for row in src.execute(select_subset(selection)):
                dst.execute(
                    sa.insert(table).values(dict(zip(selection.columns, convert(row), strict=True)))
                )
    return target


def dangling(target: sa.Engine, selections: Sequence[TableSelection], source: sa.Engine) -> int:
    """Rows of the target whose foreign key in the source points to no row of the target
    (LEFT JOIN ... IS NULL)."""
    schemas = {s.name: s for s in reflect_tables(source, [s.name for s in selections])}
    total = 0
    with target.connect() as conn:
        q = conn.dialect.identifier_preparer.quote_identifier  # doubles % for exec_driver_sql
        for selection in selections:
            for fk in schemas[selection.name].foreign_keys:
                joined = " AND ".join(
                    f"p.{q(r)} = c.{q(c)}" for c, r in zip(fk.columns, fk.ref_columns, strict=True)
                )
                present = " AND ".join(f"c.{q(c)} IS NOT NULL" for c in fk.columns)
                total += conn.exec_driver_sql(
                    f"SELECT count(*) FROM {q(selection.target)} c LEFT JOIN {q(fk.ref_table)} p "
                    f"ON {joined} WHERE {present} AND p.{q(fk.ref_columns[0])} IS NULL"
                ).scalar_one()
    return total


def rows_of(
    engine: sa.Engine, selections: Sequence[TableSelection]
) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            s.name: sorted(tuple(r) for r in conn.execute(select_subset(s))) for s in selections
        }


def options(**tables: dict[str, Any]) -> dict[str, MigrationTable]:
    return {name: MigrationTable.model_validate(spec) for name, spec in tables.items()}


def test_follow_parents_brings_exactly_the_referenced_rows(
    fleet: sa.Engine, tmp_path: Path
) -> None:
    chosen = select_tables(fleet, options(flights={"where": {"carrier": "UA"}}), "parents")
    assert [s.name for s in chosen] == ["airlines", "makers", "planes", "flights"]
    reasons = {s.name: s.reason for s in chosen}
    assert reasons == {
        "airlines": "parent of flights via flights.carrier",
        "makers": "parent of planes via planes.maker_id",
        "planes": "parent of flights via flights.tail",
        "flights": "listed",
    }
    assert rows_of(fleet, chosen) == {
        "airlines": [("UA",)],
        "makers": [(1, "boeing")],  # via N1; N4 has no maker, flight 5 no plane
        "planes": [("N1", 1), ("N4", None)],
        "flights": [(1, "UA", "N1", 1), (2, "UA", "N4", 2), (5, "UA", None, 1)],
    }
    target = copy_selection(fleet, chosen, tmp_path / "target.db")
    assert dangling(target, chosen, fleet) == 0


def test_follow_none_can_leave_dangling_keys(fleet: sa.Engine, tmp_path: Path) -> None:
    """The check itself works: without follow, the copied flights point to nothing."""
    chosen = select_tables(fleet, options(flights={"where": {"carrier": "UA"}}), "none")
    assert [s.name for s in chosen] == ["flights"]
    target = copy_selection(fleet, chosen, tmp_path / "target.db", [AIRLINES, MAKERS, PLANES])
    assert dangling(target, chosen, fleet) == 5


def test_parents_of_several_children_are_or_combined(fleet: sa.Engine, tmp_path: Path) -> None:
    chosen = select_tables(
        fleet, options(flights={"where": {"id": 3}}, planes={"where": {"tail": "N3"}}), "parents"
    )
    found = rows_of(fleet, chosen)
    assert found["planes"] == [("N2", 2), ("N3", 3)]  # listed N3, plus N2 for flight 3
    assert found["makers"] == [(2, "airbus"), (3, "embraer")]
    assert {s.name: s.reason for s in chosen}[
        "planes"
    ] == "listed; parent of flights via flights.tail"
    assert dangling(copy_selection(fleet, chosen, tmp_path / "t.db"), chosen, fleet) == 0


def test_follow_children_brings_every_child_and_their_parents(
    fleet: sa.Engine, tmp_path: Path
) -> None:
    chosen = select_tables(fleet, options(makers={"where": {"id": 1}}), "children")
    found = rows_of(fleet, chosen)
    assert found["planes"] == [("N1", 1), ("N5", 1)]
    assert found["flights"] == [(1, "UA", "N1", 1), (6, "AA", "N5", 2)]  # every child row
    assert found["airlines"] == [("AA",), ("UA",)]  # the other parents those children need
    assert found["makers"] == [(1, "boeing")]
    reasons = {s.name: s.reason for s in chosen}
    assert reasons["flights"] == "child of planes via flights.tail"
    assert reasons["airlines"] == "parent of flights via flights.carrier"
    assert dangling(copy_selection(fleet, chosen, tmp_path / "t.db"), chosen, fleet) == 0


EMPLOYEES = TableSchema(
    "employees",
    (_col("id", nullable=False), _col("boss")),
    ("id",),
    (_fk(["boss"], "employees", ["id"]),),
)
# 1 <- 2 <- 3 <- 4 and 5 <- 6; 7 alone. A chain deeper than any nesting budget: 10..30.
STAFF = [(1, None), (2, 1), (3, 2), (4, 3), (5, None), (6, 5), (7, None)] + [
    (n, n - 1 if n > 10 else None) for n in range(10, 31)
]


@pytest.mark.parametrize("kind", KINDS)
def test_self_reference(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> None:
    engine = database(request, tmp_path, kind)
    fill(engine, EMPLOYEES, STAFF)

    def staff(where: dict[str, Any], follow: str) -> list[int]:
        chosen = select_tables(engine, options(employees={"where": where}), follow)
        assert (
            dangling(
                copy_selection(engine, chosen, tmp_path / f"{follow}{where}.db"), chosen, engine
            )
            == 0
        )
        return [row[0] for row in rows_of(engine, chosen)["employees"]]

    assert staff({"id": 4}, "parents") == [1, 2, 3, 4]
    assert staff({"id": 30}, "parents") == list(range(10, 31))  # exact, however deep
    assert staff({"id": 2}, "children") == [1, 2, 3, 4]  # reports 3, 4; boss 1
    assert staff({"id": 10}, "children") == list(range(10, 31))
    engine.dispose()


REGIONS = TableSchema(
    "regions",
    (_col("country", "varchar", False), _col("code", "varchar", False), _col("name", "varchar")),
    ("country", "code"),
)
SHOPS = TableSchema(
    "shops",
    (_col("id", nullable=False), _col("country", "varchar"), _col("code", "varchar")),
    ("id",),
    (_fk(["country", "code"], "regions", ["country", "code"]),),
)


@pytest.mark.parametrize("kind", KINDS)
def test_composite_foreign_key(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> None:
    engine = database(request, tmp_path, kind)
    fill(engine, REGIONS, [("FR", "75", "Paris"), ("FR", "13", "Marseille"), ("US", "75", "x")])
    fill(engine, SHOPS, [(1, "FR", "75"), (2, "US", "75"), (3, "FR", "13"), (4, None, None)])
    chosen = select_tables(engine, options(shops={"where": {"id": [1, 4]}}), "parents")
    assert rows_of(engine, chosen)["regions"] == [("FR", "75", "Paris")]
    assert dangling(copy_selection(engine, chosen, tmp_path / "p.db"), chosen, engine) == 0
    chosen = select_tables(engine, options(regions={"where": {"code": "75"}}), "children")
    assert [row[0] for row in rows_of(engine, chosen)["shops"]] == [1, 2]
    engine.dispose()


CYCLE_A = TableSchema(
    "a", (_col("id", nullable=False), _col("b_id")), ("id",), (_fk(["b_id"], "b", ["id"]),)
)
CYCLE_B = TableSchema(
    "b", (_col("id", nullable=False), _col("a_id")), ("id",), (_fk(["a_id"], "a", ["id"]),)
)


@pytest.mark.parametrize("kind", KINDS)
def test_foreign_key_cycle_terminates(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    engine = database(request, tmp_path, kind)
    create_tables(engine, [CYCLE_A, CYCLE_B])
    with engine.begin() as conn:  # a1 -> b1 -> a2 -> b2 -> ... -> a12 -> b12 -> a1; a20 alone
        a = sa.table("a", sa.column("id"), sa.column("b_id"))
        b = sa.table("b", sa.column("id"), sa.column("a_id"))
        conn.execute(sa.insert(a), [{"id": n, "b_id": None} for n in [*range(1, 13), 20]])
        conn.execute(sa.insert(b), [{"id": n, "a_id": n % 12 + 1} for n in range(1, 13)])
        for n in range(1, 13):
            conn.execute(sa.update(a).where(a.c.id == n).values(b_id=n))
    for follow in ("parents", "children"):
        chosen = select_tables(engine, options(a={"where": {"id": 1}}), follow)
        found = rows_of(engine, chosen)
        assert [r[0] for r in found["a"]][:12] == list(
            range(1, 13)
        )  # the whole ring, a superset at most
        assert (
            dangling(copy_selection(engine, chosen, tmp_path / f"{follow}.db"), chosen, engine) == 0
        )
    engine.dispose()


DEPARTMENTS = TableSchema(
    "departments",
    (_col("id", nullable=False), _col("head_id")),
    ("id",),
    (_fk(["head_id"], "staff", ["id"]),),
)
STAFF_IN_DEPARTMENTS = TableSchema(
    "staff",
    (_col("id", nullable=False), _col("dept_id"), _col("manager_id"), _col("mentor_id")),
    ("id",),
    (
        _fk(["dept_id"], "departments", ["id"]),
        _fk(["manager_id"], "staff", ["id"]),
        _fk(["mentor_id"], "staff", ["id"]),
    ),
)


def test_a_cycle_of_tables_around_several_self_references_stays_within_the_parser(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Departments and their heads, staff with a manager and a mentor: each level of the
    # nested filter links three ways, which overflowed SQLite's parser stack.
    engine = database(request, tmp_path, "sqlite")
    create_tables(engine, [DEPARTMENTS, STAFF_IN_DEPARTMENTS])
    departments = sa.table("departments", sa.column("id"), sa.column("head_id"))
    staff = sa.table(*("staff", *map(sa.column, ("id", "dept_id", "manager_id", "mentor_id"))))
    with engine.begin() as conn:  # mentors in pairs (n <-> 41 - n), a cycle of rows too
        conn.execute(sa.insert(departments), [{"id": n, "head_id": None} for n in (1, 2, 3)])
        conn.execute(sa.insert(staff), [{"id": n, "dept_id": n % 3 + 1} for n in range(1, 41)])
        for n in range(1, 41):
            mentor = 41 - n if n % 3 else None
            conn.execute(
                sa.update(staff)
                .where(staff.c.id == n)
                .values(manager_id=n // 2 or None, mentor_id=mentor)
            )
        conn.execute(sa.update(departments).values(head_id=departments.c.id * 5))
    for follow in ("parents", "children"):
        chosen = select_tables(engine, options(staff={"where": {"dept_id": [1, 3]}}), follow)
        found = rows_of(engine, chosen)
        assert {row[0] for row in found["staff"]} >= {n for n in range(1, 41) if n % 3 != 1}
        with engine.connect() as conn:  # as the plan counts them under on_dangling: skip
            assert count_dangling(conn, resolved_only(chosen, conn.dialect)) == []
        assert (
            dangling(copy_selection(engine, chosen, tmp_path / f"{follow}.db"), chosen, engine) == 0
        )
    engine.dispose()


def test_columns_keys_renames_and_errors(fleet: sa.Engine) -> None:
    chosen = select_tables(
        fleet,
        options(flights={"columns": ["id", "m"], "rename_to": "trips"}),
        "parents",
    )
    (flights,) = chosen  # its foreign key columns are not copied: no parent is needed
    assert (flights.target, flights.columns, flights.key) == ("trips", ("id", "m"), ("id",))
    assert flights.schema.foreign_keys == ()
    assert "foreign key flights.carrier dropped: columns not copied" in flights.reason
    keyed = select_tables(fleet, options(planes={"key": ["maker_id", "tail"]}), "none")
    assert keyed[0].key == ("maker_id", "tail")
    with pytest.raises(PlanError, match="key column 'id' must be among the copied columns"):
        select_tables(fleet, options(flights={"columns": ["m"]}), "none")
    with pytest.raises(PlanError, match="has no column 'carier'; did you mean 'carrier'"):
        select_tables(fleet, options(flights={"columns": ["id", "carier"]}), "none")
    with pytest.raises(
        PlanError, match=r"no table 'flight' in the source database; did you mean 'flights'\?"
    ):
        select_tables(fleet, options(flight={}), "none")
    with fleet.begin() as conn:
        conn.exec_driver_sql("CREATE VIEW ua AS SELECT * FROM flights WHERE carrier = 'UA'")
    with pytest.raises(PlanError, match=r"'ua' in the source database is a view: a migration"):
        select_tables(fleet, options(ua={}), "none")
    with pytest.raises(PlanError, match="would both be copied to 'x'"):
        select_tables(
            fleet, options(makers={}, planes={}), "none", rename={"makers": "x", "planes": "x"}
        )


def test_all_tables_and_counts(fleet: sa.Engine) -> None:
    chosen = select_tables(fleet, None, "parents")
    assert [s.name for s in chosen] == ["airlines", "makers", "planes", "flights"]
    assert all(s.where is None and s.reason == "listed" for s in chosen)
    filtered = select_tables(fleet, options(flights={"where": {"carrier": "UA"}}), "parents")
    with fleet.connect() as conn:
        assert [count_rows(conn, s) for s in filtered] == [1, 1, 2, 3]
        assert [count_rows(conn, s) for s in chosen] == [3, 4, 5, 6]


def test_a_sql_where_the_source_refuses_is_named_with_its_table(fleet: sa.Engine) -> None:
    with pytest.raises(PlanError) as refused:
        select_tables(fleet, options(flights={"sql_where": "carier = 'UA'"}), "parents")
    assert str(refused.value).startswith(
        "table 'flights': sql_where \"carier = 'UA'\" is refused by the source database: "
    )
    assert "carier" in str(refused.value).split(": ", 2)[2]
    chosen = select_tables(fleet, options(flights={"sql_where": "carrier = 'UA'"}), "none")
    assert rows_of(fleet, chosen)["flights"] == [
        (1, "UA", "N1", 1),
        (2, "UA", "N4", 2),
        (5, "UA", None, 1),
    ]
