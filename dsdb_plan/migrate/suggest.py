"""Likely references in a database that declares no foreign keys: `dsdb references suggest`.

Candidates are found by name and type alone (`customer_id` → `customers.id`, a column named
like another table's key: `tailnum` → `planes.tailnum`), then each is counted in the
database: how many rows hold a value the parent does not have (dangling). A candidate with
few dangling rows is likely a real reference; one with many is likely a coincidence of names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from dsdb_plan.dbschema import ColumnSchema, TableSchema, reflect_tables
from dsdb_plan.references import end_label

_FAMILIES = (
    frozenset({"smallint", "integer", "bigint"}),
    frozenset({"varchar", "text"}),
)


@dataclass(frozen=True)
class Candidate:
    """`table.column` may reference `ref_table.ref_column`."""

    table: str
    column: str
    ref_table: str
    ref_column: str

    @property
    def child(self) -> str:
        return end_label(self.table, (self.column,))

    @property
    def parent(self) -> str:
        return end_label(self.ref_table, (self.ref_column,))


@dataclass(frozen=True)
class Suggestion:
    """A candidate with its counts: rows holding a value, and those the parent lacks."""

    candidate: Candidate
    rows: int
    dangling: int


def singular(name: str) -> str:
    """`customers` → `customer`, `categories` → `category`; other names as they are."""
    lowered = name.lower()
    if lowered.endswith("ies") and len(name) > 3:
        return name[:-3] + "y"
    if lowered.endswith(("ses", "xes", "ches", "shes")):
        return name[:-2]
    if lowered.endswith("s") and not lowered.endswith("ss"):
        return name[:-1]
    return name


def candidates(
    schemas: Sequence[TableSchema],
    known: Mapping[str, set[tuple[str, ...]]] | None = None,
    unique: Mapping[str, set[str]] | None = None,
) -> list[Candidate]:
    """Every likely reference by name and type, leaving out columns that `known` (table →
    column tuples already referencing something) or the table's own key cover. A table's
    key is its one-column primary key; a table without one offers the columns `unique`
    names for it (those whose values are unique in the data)."""
    known = known or {}
    unique = unique or {}
    found: list[Candidate] = []
    for child in schemas:
        own = set(child.primary_key) if len(child.primary_key) == 1 else set()
        taken = {columns[0] for columns in known.get(child.name, set()) if len(columns) == 1}
        for column in child.columns:
            if column.name in own or column.name in taken:
                continue
            for parent in schemas:
                if parent.name == child.name:
                    continue
                for key in _key_columns(parent, unique.get(parent.name, set())):
                    if _named_for(column.name, parent.name, key.name) and _same_family(column, key):
                        found.append(Candidate(child.name, column.name, parent.name, key.name))
    return sorted(found, key=lambda c: (c.table, c.column, c.ref_table))


def key_candidates(schemas: Sequence[TableSchema]) -> dict[str, list[str]]:
    """Per table without a primary key, the columns that could be its key by name: `id`,
    and those named like a column of another table (whether their values are unique is
    for the database to say)."""
    result: dict[str, list[str]] = {}
    for schema in schemas:
        if schema.primary_key:
            continue
        elsewhere = {
            column.lower()
            for other in schemas
            if other.name != schema.name
            for column in other.column_names
        }
        result[schema.name] = [
            column
            for column in schema.column_names
            if column.lower() == "id" or column.lower() in elsewhere
        ]
    return result


def _key_columns(schema: TableSchema, unique: set[str]) -> list[ColumnSchema]:
    if len(schema.primary_key) == 1:
        return [schema.column(schema.primary_key[0])]
    if schema.primary_key:
        return []
    return [column for column in schema.columns if column.name in unique]


def _named_for(column: str, table: str, key: str) -> bool:
    lowered = column.lower()
    if key.lower() != "id" and lowered == key.lower():
        return True  # tailnum → planes.tailnum
    stems = {table.lower(), singular(table).lower()}
    return any(lowered in (f"{stem}_{key.lower()}", f"{stem}{key.lower()}") for stem in stems)


def _same_family(one: ColumnSchema, other: ColumnSchema) -> bool:
    if one.type == other.type:
        return True
    return any(one.type in family and other.type in family for family in _FAMILIES)


def suggest(engine: sa.Engine) -> list[Suggestion]:
    """The likely references of the database, each counted there."""
    schemas = reflect_tables(engine)
    known = {schema.name: {fk.columns for fk in schema.foreign_keys} for schema in schemas}
    with engine.connect() as conn:
        unique = {
            table: {column for column in columns if _unique(conn, table, column)}
            for table, columns in key_candidates(schemas).items()
        }
        return [_counted(conn, candidate) for candidate in candidates(schemas, known, unique)]


def _unique(conn: sa.Connection, table: str, column: str) -> bool:
    """Whether every row holds a value in `column`, each a different one."""
    source = sa.table(table, sa.column(column))
    value = source.c[column]
    counts = sa.select(sa.func.count(), sa.func.count(sa.distinct(value))).select_from(source)
    total, distinct = conn.execute(counts).one()
    return bool(total) and total == distinct


def _counted(conn: sa.Connection, candidate: Candidate) -> Suggestion:
    """Rows of the child holding a value, and those whose value the parent does not have:
    counted by the database, never read into Python. The parent is LEFT JOINed rather than
    looked up with NOT EXISTS: SQLite runs that correlated subquery as a scan of the parent
    for each child row (a parent without an index, as here: minutes for 300,000 rows), where
    it builds a temporary index for the join; PostgreSQL runs either as an anti-join. The
    parent's column is its key or unique and not NULL, so no child row is counted twice."""
    child = sa.table(candidate.table, sa.column(candidate.column)).alias("child")
    parent = sa.table(candidate.ref_table, sa.column(candidate.ref_column)).alias("parent")
    value = child.c[candidate.column]
    held = value.is_not(None)
    found = parent.c[candidate.ref_column]
    rows = conn.execute(sa.select(sa.func.count()).select_from(child).where(held)).scalar_one()
    dangling = conn.execute(
        sa.select(sa.func.count())
        .select_from(child.outerjoin(parent, found == value))
        .where(held, found.is_(None))
    ).scalar_one()
    return Suggestion(candidate, int(rows), int(dangling))


def render_yaml(connection: str, suggestions: Sequence[Suggestion]) -> str:
    """The suggestions as a `references:` block ready to paste under the connection."""
    if not suggestions:
        return f"# No likely references found in connection '{connection}'.\n"
    lines = [
        f"# Likely references in connection '{connection}', by name and type; dangling: rows",
        "# whose value the parent does not hold. Paste what is right under the connection.",
        "references:",
    ]
    width = max(len(f"{s.candidate.child}: {s.candidate.parent}") for s in suggestions)
    for each in suggestions:
        entry = f"{each.candidate.child}: {each.candidate.parent}"
        lines.append(f"  {entry.ljust(width)}  # {each.dangling:,} of {each.rows:,} rows dangling")
    return "\n".join(lines) + "\n"
