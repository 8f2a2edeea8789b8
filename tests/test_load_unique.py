"""Keyed writes into a MariaDB table with a second unique index match rows by the key
alone: a row that clashes on the other index is refused, never written over another row."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan.dbschema import ColumnSchema
from dsdb_plan.migrate.load import batch_writer
from tests.servers import ServerDatabase

TABLE = 'users "x" %s'  # quotes and a percent sign, as hostile names go
COLUMNS = (
    ColumnSchema("id", "integer", nullable=False),
    ColumnSchema("email", "varchar", length=40),
    ColumnSchema("name", "varchar", length=40),
)


def users(engine: sa.Engine) -> list[tuple[Any, ...]]:
    table = sa.table(TABLE, sa.column("id"), sa.column("email"), sa.column("name"))
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(table).order_by(table.c.id))]


def write(engine: sa.Engine, operation: str, rows: list[tuple[Any, ...]]) -> None:
    with engine.begin() as conn:
        writer = batch_writer(conn, TABLE, COLUMNS, operation=operation, key=("id",))  # type: ignore[arg-type]
        writer.write(rows)
        writer.write(rows)  # a replayed batch changes nothing more


@pytest.mark.mariadb
def test_a_second_unique_index_never_redirects_an_upsert(mariadb_db: ServerDatabase) -> None:
    engine = mariadb_db.engine()
    quoted = engine.dialect.identifier_preparer.quote_identifier(TABLE)  # % doubled
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {quoted} (id INT PRIMARY KEY, email VARCHAR(40) UNIQUE,"
            " name VARCHAR(40))"
        )
        conn.exec_driver_sql(f"INSERT INTO {quoted} VALUES (1, 'a@x', 'A'), (2, 'b@x', 'B')")

    write(engine, "upsert", [(1, "a@x", "A2"), (3, "c@x", "C")])
    assert users(engine) == [(1, "a@x", "A2"), (2, "b@x", "B"), (3, "c@x", "C")]
    write(engine, "insert_ignore", [(2, "b@x", "not B"), (5, "e@x", "E")])
    assert users(engine)[1] == (2, "b@x", "B") and users(engine)[-1] == (5, "e@x", "E")

    # Row 4 takes the email row 2 holds: ON DUPLICATE KEY alone would update row 2.
    with pytest.raises(sa.exc.IntegrityError, match="Duplicate entry"):
        write(engine, "upsert", [(4, "b@x", "D")])
    assert (2, "b@x", "B") in users(engine) and 4 not in [row[0] for row in users(engine)]
    engine.dispose()
