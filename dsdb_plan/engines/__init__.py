"""One module per database engine, and the registry that finds a dialect's engine.

Each engine declares its `Capabilities` as data and implements what differs between
databases (types and defaults in DDL, reflection, how values are read). An engine dsdb does
not know is an error naming it, never another engine's rules.

The registry itself is plain data: what users call an engine and how it is reached
(`Registration`). An engine's module, and SQLAlchemy with it, loads only when its rules are
first asked for, so reading a manifest (`dsdb validate`) loads neither.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsdb_plan.errors import DsdbError

if TYPE_CHECKING:
    import sqlalchemy as sa

    from dsdb_plan.engines.base import Capabilities as Capabilities
    from dsdb_plan.engines.base import Engine as Engine
    from dsdb_plan.engines.base import TableSwap as TableSwap


@dataclass(frozen=True)
class Registration:
    """An engine as users name and reach it, known before its module loads."""

    #: The engine's module in this package, which defines `ENGINE`.
    module: str
    #: The SQLAlchemy dialect names it serves (MySQL and MariaDB are one engine).
    dialects: tuple[str, ...]
    #: The `driver:` names users write for it, and the SQLAlchemy dialect+DBAPI each means.
    drivers: Mapping[str, str]
    #: The database is a file opened in-process (a path), not a database on a server.
    embedded: bool = False
    #: The server's port when a connection names none.
    default_port: int | None = None


#: Every engine dsdb knows. A new engine is its module plus one line here.
REGISTRY: tuple[Registration, ...] = (
    Registration("sqlite", ("sqlite",), {"sqlite": "sqlite"}, embedded=True),
    Registration(
        "postgresql",
        ("postgresql",),
        {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"},
        default_port=5432,
    ),
    Registration(
        "mysql",
        ("mysql", "mariadb"),
        {"mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"},
        default_port=3306,
    ),
    # `duckdb+dsdb`: duckdb_engine's dialect with reflection that DuckDB answers (duckdb.py).
    Registration("duckdb", ("duckdb",), {"duckdb": "duckdb+dsdb"}, embedded=True),
)

_BY_DIALECT: dict[str, Registration] = {
    dialect: registration for registration in REGISTRY for dialect in registration.dialects
}
#: Every `driver:` name users may write, and the SQLAlchemy dialect+DBAPI it means.
DRIVERS: dict[str, str] = {
    name: drivername
    for registration in REGISTRY
    for name, drivername in registration.drivers.items()
}
#: The driver names suggested for a misspelt one (aliases such as `postgres` left out).
CANONICAL_DRIVERS: list[str] = [name for name in DRIVERS if name in _BY_DIALECT]


class UnknownEngineError(DsdbError):
    """A database whose engine dsdb has no rules for."""


def _dialect_name(dialect: sa.Dialect | str) -> str:
    return dialect if isinstance(dialect, str) else dialect.name


def registration_for(dialect: sa.Dialect | str) -> Registration:
    """How the engine of a dialect (or dialect name) is reached; `UnknownEngineError` if none."""
    name = _dialect_name(dialect)
    registration = _BY_DIALECT.get(name)
    if registration is None:
        known = ", ".join(_BY_DIALECT)
        raise UnknownEngineError(
            f"dsdb has no rules for the {name!r} database engine (it knows {known})"
        )
    return registration


def engine_for(dialect: sa.Dialect | str) -> Engine:
    """The engine of a SQLAlchemy dialect (or dialect name); `UnknownEngineError` otherwise."""
    module = importlib.import_module(f"{__name__}.{registration_for(dialect).module}")
    engine: Engine = module.ENGINE
    return engine


def same_kind(a: sa.Dialect, b: sa.Dialect) -> bool:
    """Whether two dialects reach the same product (one engine, one variant of it), so a
    fingerprint one takes natively compares with the other's."""
    engine = engine_for(a)
    return engine_for(b) is engine and engine.server_name(a) == engine.server_name(b)


def __getattr__(name: str) -> Any:
    # The shared classes, re-exported without loading SQLAlchemy until one is used.
    if name in ("Capabilities", "Engine", "TableSwap"):
        from dsdb_plan.engines import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
