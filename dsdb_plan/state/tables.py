"""The state's tables, defined once for every backend, and the steps that upgrade old layouts.

The schema is versioned in `meta` (`format`, `schema_version`, `lineage`, `serial`). Step N
brings a state from version N to N+1; released steps keep their outcome, so every older state
upgrades the same way. Each step only adds what is missing, because the SQLite file and the
PostgreSQL schema reached version 1 with different tables (the PostgreSQL schema had its
history from the start, with the columns version 3 gives the SQLite file).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import sqlalchemy as sa

FORMAT = "dsdb-state"

metadata = sa.MetaData()

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
resources = sa.Table(
    "resources",
    metadata,
    sa.Column("address", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    # The exact JSON text `dump_json` made, so "did this write change anything" is a text
    # comparison.
    sa.Column("record", sa.Text, nullable=False),
)
checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("address", sa.Text, primary_key=True),
    sa.Column("data", sa.Text, nullable=False),
)
history = sa.Table(
    "history",
    metadata,
    # Ids only grow (AUTOINCREMENT never reuses one), so id order is append order.
    sa.Column("id", sa.Integer, sa.Identity(always=True), primary_key=True),
    sa.Column("address", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("user_name", sa.Text, nullable=False, key="user"),  # "user" is reserved
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("started_at", sa.Text, nullable=False),
    sa.Column("finished_at", sa.Text, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("duration_s", sa.Double, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Index("history_by_address", "address", "id"),
    sqlite_autoincrement=True,
)


Step = Callable[[sa.Connection, sa.Table, str | None], None]
"""step(conn, lock, schema): `lock` is the backend's lock table, `schema` where tables live."""


def _create(*tables: sa.Table) -> Step:
    def step(conn: sa.Connection, lock: sa.Table, schema: str | None) -> None:
        for table in tables or (meta, resources, checkpoints, lock):
            table.create(conn, checkfirst=True)

    return step


def _name_history_user(conn: sa.Connection, lock: sa.Table, schema: str | None) -> None:
    """SQLite files of version 2 call the history's user column `user`."""
    columns = sa.inspect(conn).get_columns("history", schema=schema)
    if "user" in {column["name"] for column in columns}:
        table = f"{schema}.history" if schema else "history"
        conn.execute(sa.text(f'ALTER TABLE {table} RENAME COLUMN "user" TO user_name'))


UPGRADES: tuple[Step, ...] = (
    _create(),  # version 1: the state proper and its lock
    _create(history),  # version 2: the history log
    _name_history_user,  # version 3: one history layout for every backend
)
SCHEMA_VERSION = len(UPGRADES)


def upgrade(conn: sa.Connection, version: int, lock: sa.Table, schema: str | None) -> None:
    """Apply the steps after `version` in this write; 0 creates the state."""
    for step in UPGRADES[version:]:
        step(conn, lock, schema)
    if version == 0:
        conn.execute(
            meta.insert(),
            [
                {"key": "format", "value": FORMAT},
                {"key": "lineage", "value": str(uuid.uuid4())},
                {"key": "serial", "value": "0"},
            ],
        )
    conn.execute(meta.delete().where(meta.c.key == "schema_version"))
    conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
