"""One module per database engine, and the registry that finds a dialect's engine.

Each engine declares its `Capabilities` as data and implements what differs between
databases (types and defaults in DDL, reflection, how values are read). An engine dsdb does
not know is an error naming it, never another engine's rules.
"""

from __future__ import annotations

import sqlalchemy as sa

from dsdb_plan.engines.base import Capabilities as Capabilities
from dsdb_plan.engines.base import Engine as Engine
from dsdb_plan.engines.base import TableSwap as TableSwap
from dsdb_plan.engines.mysql import MYSQL
from dsdb_plan.engines.postgresql import POSTGRESQL
from dsdb_plan.engines.sqlite import SQLITE
from dsdb_plan.errors import DsdbError

_ENGINES: dict[str, Engine] = {
    dialect: engine for engine in (SQLITE, POSTGRESQL, MYSQL) for dialect in engine.dialects
}


class UnknownEngineError(DsdbError):
    """A database whose engine dsdb has no rules for."""


def engine_for(dialect: sa.Dialect | str) -> Engine:
    """The engine of a SQLAlchemy dialect (or dialect name); `UnknownEngineError` otherwise."""
    name = dialect if isinstance(dialect, str) else dialect.name
    engine = _ENGINES.get(name)
    if engine is None:
        known = ", ".join(_ENGINES)
        raise UnknownEngineError(
            f"dsdb has no rules for the {name!r} database engine (it knows {known})"
        )
    return engine


def same_kind(a: sa.Dialect, b: sa.Dialect) -> bool:
    """Whether two dialects reach the same product (one engine, one variant of it), so a
    fingerprint one takes natively compares with the other's."""
    engine = engine_for(a)
    return engine_for(b) is engine and engine.server_name(a) == engine.server_name(b)


#: Every `driver:` name users may write, and the SQLAlchemy dialect+DBAPI it means.
DRIVERS: dict[str, str] = {
    name: drivername
    for engine in (SQLITE, POSTGRESQL, MYSQL)
    for name, drivername in engine.drivers.items()
}
#: The driver names suggested for a misspelt one (aliases such as `postgres` left out).
CANONICAL_DRIVERS: list[str] = [name for name in DRIVERS if name in _ENGINES]


def known_engine(dialect: sa.Dialect | str) -> Engine | None:
    """The engine of a dialect, or None for one dsdb does not know (callers that have a
    generic path, through SQLAlchemy's typed columns, for any other dialect)."""
    name = dialect if isinstance(dialect, str) else dialect.name
    return _ENGINES.get(name)
