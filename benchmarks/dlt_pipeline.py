"""dlt's side of a path, in its own process: `python -m benchmarks.dlt_pipeline JSON_ARGS`.

The `sql_database` source with the pyarrow backend (dlt's fastest), loaded with
`write_disposition="replace"`, as dlt's documentation sets up a copy of whole tables.
One adjustment a user would have to make: SQLAlchemy reflects SQLite's `TIMESTAMP WITH TIME
ZONE` column as NUMERIC, and reading its text as a number stops the pipeline, so a type
adapter reads such columns as text.
"""

from __future__ import annotations

import json
import sys

import dlt
import sqlalchemy as sa
from dlt.sources.sql_database import sql_database

from benchmarks.data import TABLES


def _untyped_as_text(table: sa.Table) -> sa.Table:
    """A NUMERIC without precision is SQLAlchemy's guess for a type SQLite does not name."""
    for column in table.columns:
        if isinstance(column.type, sa.Numeric) and column.type.precision is None:
            column.type = sa.Text()
    return table


def run(source_url: str, destination: str, target: str, pipelines_dir: str) -> None:
    """Copy the benchmark tables from `source_url` into `target` (a URL or a DuckDB file)."""
    if destination == "postgres":
        into = dlt.destinations.postgres(target)
        dataset = "public"
    else:
        into = dlt.destinations.duckdb(target)
        dataset = "main"
    source = sql_database(
        credentials=source_url,
        table_names=list(TABLES),
        backend="pyarrow",
        table_adapter_callback=_untyped_as_text,
    )
    pipeline = dlt.pipeline(
        pipeline_name="dsdb_bench",
        destination=into,
        dataset_name=dataset,
        pipelines_dir=pipelines_dir,
    )
    # dlt writes arrow data for PostgreSQL as CSV, which refuses binary columns.
    loader = "insert_values" if destination == "postgres" else None
    print(pipeline.run(source, write_disposition="replace", loader_file_format=loader))


if __name__ == "__main__":
    run(**json.loads(sys.argv[1]))
