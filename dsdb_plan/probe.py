"""Reach each connection: driver, server version, round-trip time, or why it failed."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, replace
from pathlib import Path

import sqlalchemy as sa

from dsdb_plan.connection import Connection
from dsdb_plan.engines import engine_for
from dsdb_plan.errors import driver_message
from dsdb_plan.redact import redact

CONNECT_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class ProbeResult:
    """What reaching one connection showed."""

    name: str
    dialect: str
    target: str
    ok: bool
    server_version: str | None = None
    round_trip_ms: float | None = None
    error: str | None = None


def _target(connection: Connection) -> str:
    url = connection.sqlalchemy_url()
    engine = engine_for(connection.dialect)  # a Connection's engine is always known
    if engine.registration.embedded:
        return url.database or ":memory:"
    host = url.host or "localhost"
    port = url.port or engine.registration.default_port
    return f"{host}:{port}/{url.database or ''}"


def probe(name: str, connection: Connection) -> ProbeResult:
    """Connect once, read the server version, and time a trivial round trip."""
    target = _target(connection)
    base = ProbeResult(name=name, dialect=connection.dialect, target=target, ok=False)
    if connection.is_sqlite_file and not Path(connection.link).exists():
        return replace(
            base,
            ok=True,
            server_version=f"SQLite {sqlite3.sqlite_version}",
            error="file does not exist yet; it is created on first write",
        )
    rules = engine_for(connection.dialect)
    argument = rules.connect_timeout_argument
    connect_args = {argument: CONNECT_TIMEOUT_SECONDS} if argument else {}
    engine = connection.create_engine(connect_args=connect_args, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            started = time.perf_counter()
            conn.execute(sa.text("SELECT 1"))
            elapsed = (time.perf_counter() - started) * 1000
            version = ".".join(str(p) for p in engine.dialect.server_version_info or ())
    except Exception as error:  # any driver's failure is reported, not raised
        return replace(base, error=redact(driver_message(error)))
    finally:
        engine.dispose()
    label = rules.server_name(engine.dialect)
    return replace(
        base, ok=True, server_version=f"{label} {version}".strip(), round_trip_ms=round(elapsed, 2)
    )
