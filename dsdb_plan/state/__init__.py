"""Recorded state: what applies did, behind one small interface (`StateStore`).

`open_state` is the one place that maps a `settings.state` location to a store; a new kind
of store is one backend module and one entry in `_BACKENDS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from dsdb_plan.errors import StateError
from dsdb_plan.state.postgres_backend import PostgresStateStore
from dsdb_plan.state.records import (
    HistoryEntry,
    LockInfo,
    ResourceRecord,
    StateSnapshot,
    resource_history,
)
from dsdb_plan.state.sql_store import SqlStateStore
from dsdb_plan.state.sqlite_backend import SqliteStateStore
from dsdb_plan.state.store import StateStore, holder_liveness

__all__ = [
    "HistoryEntry",
    "LockInfo",
    "PostgresStateStore",
    "ResourceRecord",
    "SqlStateStore",
    "SqliteStateStore",
    "StateSnapshot",
    "StateStore",
    "holder_liveness",
    "open_state",
    "resource_history",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def _sqlite_file(url: URL, base_dir: Path) -> StateStore:
    if not url.database:
        raise StateError(
            "a SQLite state URL needs a file: sqlite:///relative/state.db or "
            "sqlite:////absolute/state.db"
        )
    return SqliteStateStore(_resolve(url.database, base_dir))


# A URL's backend name (its scheme without "+driver") -> the store it opens.
_BACKENDS: dict[str, Callable[[URL, Path], StateStore]] = {
    "sqlite": _sqlite_file,
    # Any driver spelling opens with psycopg 3: the URL's parts mean the same to libpq.
    "postgresql": lambda url, _: PostgresStateStore(url),
    "postgres": lambda url, _: PostgresStateStore(url),
}


def open_state(location: str, base_dir: Path) -> StateStore:
    """The store at `location`: a file path (relative to `base_dir`) or a URL.

    `sqlite:///relative/state.db` and `sqlite:////absolute/state.db` follow SQLAlchemy's
    spelling. `postgresql://`, `postgres://` and `postgresql+<driver>://` URLs open the shared
    PostgreSQL store. Nothing is created (or connected to) until it is used.
    """
    match = _SCHEME.match(location)
    if match is None:
        return SqliteStateStore(_resolve(location, base_dir))
    # Only the scheme is named in messages: the rest of a URL may hold a password.
    scheme = match.group(1).lower()
    try:
        url = make_url(location)
    except (ArgumentError, ValueError):
        # The parser's message may quote the whole URL, password included.
        raise StateError(f"the state URL is not a valid {scheme}:// URL") from None
    opener = _BACKENDS.get(url.get_backend_name())
    if opener is None:
        raise StateError(
            f"unsupported state location '{scheme}://...': use a file path, sqlite:///path "
            "or a postgresql:// URL"
        )
    return opener(url, base_dir)


def _resolve(path: str, base_dir: Path) -> Path:
    file = Path(path).expanduser()
    return file if file.is_absolute() else Path(base_dir) / file
