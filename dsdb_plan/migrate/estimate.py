"""How many rows a migration table would copy, as the plan shows it (issue 4, item 7).

Exact when that is cheap: an unfiltered table's count is in its fingerprint, and a filtered
table of at most `EXACT_UP_TO` rows is counted with `count_rows`. Counting a larger filtered
table would scan it on every plan, so the database's planner estimates it instead (each
engine says how, `Engine.explain_prefix` and `Engine.explained_rows`):

- PostgreSQL: `EXPLAIN (FORMAT JSON)`, the top node's "Plan Rows".
- MariaDB/MySQL: the tabular EXPLAIN, rows x filtered % of each table the outer query reads
  (id 1), multiplied along its join (a semi-join into a subquery adds a table). MariaDB only
  shows `filtered` with EXPLAIN EXTENDED, which MySQL 8 no longer accepts and no longer needs.
  MariaDB's `FORMAT=JSON` is not used: it writes a quote in a filter value as `\\'`, which
  is not JSON (MariaDB 10.11).
- Engines without an estimator (SQLite) have their rows counted.

The EXPLAIN wraps the very SELECT the copy runs, so filter values stay bound parameters. An
estimate is kept between 0 and the table's row count; an EXPLAIN that fails or says nothing
usable (MariaDB's "Impossible WHERE") falls back to the exact count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

from dsdb_plan.engines import engine_for
from dsdb_plan.migrate.subset import TableSelection, count_rows, select_subset

#: Filtered tables with at most this many rows are counted exactly; larger ones estimated.
EXACT_UP_TO = 1_000_000


@dataclass(frozen=True)
class RowCount:
    """How many rows a table would copy, and whether the database only estimated it."""

    rows: int
    estimated: bool = False


def rows_to_copy(source: sa.Engine, selection: TableSelection, total: int) -> RowCount:
    """How many rows `selection` copies from its table of `total` rows (from its fingerprint)."""
    if selection.where is None:
        return RowCount(total)
    with source.connect() as conn:
        if total > EXACT_UP_TO:
            estimate = _estimate(conn, select_subset(selection))
            if estimate is not None:
                return RowCount(max(0, min(total, round(estimate))), estimated=True)
        return RowCount(count_rows(conn, selection))


class _Explain(Executable, ClauseElement):
    """`<prefix> <query>`: EXPLAIN around a SELECT, compiled with its bound parameters."""

    inherit_cache = False

    def __init__(self, prefix: str, query: sa.Select[Any]) -> None:
        self.prefix = prefix
        self.query = query


@compiles(_Explain)
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{element.prefix} {compiler.process(element.query, **kw)}"


def _estimate(conn: sa.Connection, query: sa.Select[Any]) -> float | None:
    """The planner's estimate of the rows `query` returns; None when it has none to give."""
    engine = engine_for(conn.dialect)
    prefix = engine.explain_prefix(conn.dialect)
    if prefix is None:
        return None
    try:
        result = conn.execute(_Explain(prefix, query)).mappings().all()
    except sa.exc.SQLAlchemyError:
        conn.rollback()  # PostgreSQL runs nothing more in a failed transaction
        return None
    try:
        rows = engine.explained_rows(result)
    except (LookupError, TypeError, ValueError):
        return None
    return rows if math.isfinite(rows) else None
