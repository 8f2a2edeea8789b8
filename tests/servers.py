"""Real database servers for the tests: one uniquely named database per server per session.

Set DSDB_TEST_POSTGRES_URL / DSDB_TEST_MARIADB_URL to point at other servers (an admin URL
without a database). Without a server, its tests skip with the reason, unless
DSDB_REQUIRE_SERVERS=1 (CI), where a missing server fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

DEFAULT_ADMIN_URLS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/",
}
ENV_NAMES = {"postgresql": "DSDB_TEST_POSTGRES_URL", "mariadb": "DSDB_TEST_MARIADB_URL"}


def servers_required() -> bool:
    return os.environ.get("DSDB_REQUIRE_SERVERS", "") not in ("", "0", "false")


@dataclass
class ServerDatabase:
    """A scratch database on a real server, emptied before each test that uses it."""

    kind: str
    admin_url: URL
    name: str

    @property
    def url(self) -> URL:
        return self.admin_url.set(database=self.name)

    @property
    def url_string(self) -> str:
        return self.url.render_as_string(hide_password=False)

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.url, poolclass=sa.pool.NullPool)

    def create(self) -> None:
        with self._admin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {self.name}")

    def drop(self) -> None:
        with self._admin() as conn:
            if self.kind == "postgresql":
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
            else:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.name}")

    def reset(self) -> None:
        """Remove every table, view and sequence, leaving an empty database."""
        if self.kind == "postgresql":
            engine = self.engine()
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP SCHEMA public CASCADE")
                conn.exec_driver_sql("CREATE SCHEMA public")
            engine.dispose()
        else:
            self.drop()
            self.create()

    def _admin(self) -> sa.Connection:
        engine = sa.create_engine(
            self.admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        return engine.connect()


def server_database(kind: str) -> Iterator[ServerDatabase]:
    """Create the session's database on server `kind`, or skip (fail in CI) without one."""
    admin_url = make_url(os.environ.get(ENV_NAMES[kind], DEFAULT_ADMIN_URLS[kind]))
    database = ServerDatabase(kind, admin_url, f"dsdb_test_{uuid.uuid4().hex[:10]}")
    try:
        database.create()
    except Exception as error:  # any driver error means "no usable server"
        reason = (
            f"{kind} server not reachable at {admin_url.host}:{admin_url.port}: "
            + (str(getattr(error, "orig", error)).splitlines()[0])
        )
        if servers_required():
            pytest.fail(f"DSDB_REQUIRE_SERVERS is set but {reason}")
        pytest.skip(reason)
    try:
        yield database
    finally:
        database.drop()
