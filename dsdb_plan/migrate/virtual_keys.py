"""References declared in the manifest, added to the source's reflected tables.

`follow`, the target's schema and the plan's checks all take a table's foreign keys from
its `TableSchema`; a declared reference becomes one there, so it is followed, created and
checked exactly like a key the database declares. A target can only hold a foreign key to
a primary key or to unique columns, which a source without constraints rarely declares:
whether the referenced values are unique is asked of the source database.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import sqlalchemy as sa

from dsdb_plan.dbschema import ForeignKeySchema, IndexSchema, TableSchema
from dsdb_plan.errors import PlanError, did_you_mean
from dsdb_plan.references import end_label, reference_label


@dataclass(frozen=True)
class Unmade:
    """A declared reference that is followed but cannot be a key in the target."""

    fk: ForeignKeySchema
    why: str


def with_references(
    engine: sa.Engine | sa.Connection,
    schemas: Mapping[str, TableSchema],
    references: Sequence[tuple[str, ForeignKeySchema]],
) -> tuple[dict[str, TableSchema], dict[str, list[str | Unmade]]]:
    """`schemas` with the declared references added as foreign keys, and notes per table.

    A reference must name tables and columns the source has (PlanError otherwise). One the
    source declares already is left as it is. A target can only hold a foreign key to a
    primary key or unique columns: a reference to other columns whose values are unique in
    the source makes them the parent's primary key when it has none and they hold no NULL
    (the key its rows are matched by, created with the table so that every engine can
    point at it), a unique index otherwise; one whose values repeat is followed but not
    created (an `Unmade` note says why).
    """
    result = dict(schemas)
    notes: dict[str, list[str | Unmade]] = {}
    for table, fk in references:
        _check_reference(schemas, table, fk)
        child = result[table]
        if any(
            (known.columns, known.ref_table, known.ref_columns)
            == (fk.columns, fk.ref_table, fk.ref_columns)
            for known in child.foreign_keys
        ):
            continue
        result[table] = replace(child, foreign_keys=(*child.foreign_keys, fk))
        label = reference_label(table, fk)
        parent = result[fk.ref_table]
        found: list[str | Unmade] = [f"foreign key {label} from references"]
        if not _is_key(parent, fk.ref_columns):
            unique, nulls = _unique_in_source(engine, parent.name, fk.ref_columns)
            if unique and not parent.primary_key and not nulls:
                result[fk.ref_table] = _with_primary_key(parent, fk.ref_columns)
            elif unique:
                index = IndexSchema(None, fk.ref_columns, unique=True)
                result[fk.ref_table] = replace(parent, indexes=(*parent.indexes, index))
            else:
                where = end_label(fk.ref_table, fk.ref_columns)
                found.append(Unmade(fk, f"{where} holds repeated values"))
        notes.setdefault(table, []).extend(found)
    return result, notes


def _with_primary_key(schema: TableSchema, key: tuple[str, ...]) -> TableSchema:
    columns = tuple(
        replace(column, nullable=False) if column.name in key else column
        for column in schema.columns
    )
    return replace(schema, columns=columns, primary_key=key)


def _check_reference(schemas: Mapping[str, TableSchema], table: str, fk: ForeignKeySchema) -> None:
    label = reference_label(table, fk)
    for name, columns in ((table, fk.columns), (fk.ref_table, fk.ref_columns)):
        schema = schemas.get(name)
        if schema is None:
            hint = did_you_mean(name, list(schemas))
            raise PlanError(f"references: {label}: no table {name!r} in the source{hint}")
        for column in columns:
            if column not in schema.column_names:
                raise PlanError(
                    f"references: {label}: table {name!r} has no column {column!r}"
                    + did_you_mean(column, schema.column_names)
                )


def _is_key(schema: TableSchema, columns: tuple[str, ...]) -> bool:
    wanted = set(columns)
    if schema.primary_key and set(schema.primary_key) == wanted:
        return True
    return any(index.unique and set(index.columns) == wanted for index in schema.indexes)


def _unique_in_source(
    engine: sa.Engine | sa.Connection, table: str, columns: Sequence[str]
) -> tuple[bool, bool]:
    """Whether no two rows of `table` hold the same non-NULL values in `columns`, and
    whether any holds a NULL there."""
    source = sa.table(table, *(sa.column(column) for column in columns))
    keys = [source.c[column] for column in columns]
    repeated = (
        sa.select(*keys)
        .where(*(key.is_not(None) for key in keys))
        .group_by(*keys)
        .having(sa.func.count() > 1)
        .limit(1)
    )
    nulls = sa.select(sa.literal(1)).where(sa.or_(*(key.is_(None) for key in keys))).limit(1)
    with contextlib.ExitStack() as stack:
        conn = (
            engine if isinstance(engine, sa.Connection) else stack.enter_context(engine.connect())
        )
        unique = conn.execute(repeated).first() is None
        return unique, conn.execute(nulls.select_from(source)).first() is not None
