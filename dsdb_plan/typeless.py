"""What a SQLite column declared without a type becomes in an engine whose columns are typed.

Such a column has no affinity: each value keeps the storage class it was written with
(https://sqlite.org/datatype3.html), 1 and '1' and 1.0 alike. SQLite holds it as it is (the
target column is typeless too). Every other engine needs one type for the column, chosen
here from the storage classes its values hold (`StoredClasses`, observed by the source
engine in one aggregate query): a type that holds every value exactly, or a refusal that
names the column, the classes found and what the user can do. Pure: the plan shows the
choice and its reason, and the apply makes the same one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import sqlalchemy as sa

from dsdb_plan.engines import Engine, engine_for
from dsdb_plan.errors import PlanError
from dsdb_plan.portable import STORAGE_CLASSES, ColumnSchema, TableSchema

TYPELESS = "typeless"
#: The one class a column holds -> the portable type that holds each of its values exactly.
_SINGLE = {"integer": "bigint", "real": "double", "text": "text", "blob": "binary"}


@dataclass(frozen=True)
class Inferred:
    """The type a typeless column is created with, and why, in words for the plan."""

    column: ColumnSchema
    reason: str


def infer(table: str, column: ColumnSchema, engine: str) -> Inferred:
    """The typed column `column` (typeless, holding what `observe` found) becomes in `engine`
    (a name, for messages), or PlanError when no one type holds every value exactly."""
    stored = column.stored
    if stored is None:
        raise PlanError(f"table {table!r}: column {column.name!r} was not observed")
    classes = stored.classes
    found = [kind for kind in STORAGE_CLASSES if kind in classes]
    what = f"column {column.name!r} has no declared type and holds "
    if not found:
        return _as(column, "text", what + "only NULLs")
    if len(found) == 1:
        return _as(column, _SINGLE[found[0]], what + f"only {found[0]}s")
    if classes == {"integer", "real"}:
        if stored.integers_fit_double:
            return _as(column, "double", what + "integers and reals (each exact in a double)")
        problem = "integers and reals, and integers beyond ±2**53 that a double would round"
    else:
        named = [f"{kind}s" for kind in found]
        problem = f"{', '.join(named[:-1])} and {named[-1]}"
    raise PlanError(f"table {table!r}: {what}{problem}: no {engine} column type holds them all")


def _as(column: ColumnSchema, kind: str, why: str) -> Inferred:
    return Inferred(replace(column, type=kind, stored=None), f"{why}: created as {kind}")


#: What a user can do about a typeless column no type holds, wherever it is copied from.
REMEDY = (
    "make such a column's values one storage class in the source (UPDATE t SET c = "
    "CAST(c AS TEXT) keeps their text), or give it a declared type"
)


def for_engine(
    schema: TableSchema, engine: Engine, *, remedy: str = REMEDY
) -> tuple[TableSchema, tuple[str, ...]]:
    """`schema` as `engine` creates it: where its columns are typed, each typeless column
    (observed first: `observe`) takes its inferred type; with the reason of each. Raises
    PlanError naming every column no type holds, then `remedy`."""
    typeless = [column for column in schema.columns if column.type == TYPELESS]
    if not typeless or not engine.capabilities.typed_columns:
        return schema, ()
    made: dict[str, Inferred] = {}
    refused: list[str] = []
    for column in typeless:
        try:
            made[column.name] = infer(schema.name, column, engine.name)
        except PlanError as error:
            refused.append(error.message)
    if refused:
        raise PlanError("\n".join([*refused, remedy]))  # every column at once, for one fix
    columns = tuple(made[c.name].column if c.name in made else c for c in schema.columns)
    return replace(schema, columns=columns), tuple(inferred.reason for inferred in made.values())


def observe(conn: sa.Connection, schema: TableSchema) -> TableSchema:
    """`schema` with what each of its typeless columns holds, read in one query."""
    names = [column.name for column in schema.columns if column.type == TYPELESS]
    if not names:
        return schema
    stored = engine_for(conn.dialect).stored_classes(conn, schema.name, names)
    columns = tuple(
        replace(column, stored=stored[column.name]) if column.name in stored else column
        for column in schema.columns
    )
    return replace(schema, columns=columns)
