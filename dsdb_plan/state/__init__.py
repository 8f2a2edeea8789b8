"""Recorded state: what applies did, behind one small interface (`StateStore`).

`open_state` is the one place that maps a `settings.state` location to a store, so a new kind
of store (shared PostgreSQL, issue 5) plugs in here without touching the planner.
"""

from __future__ import annotations

import re
from pathlib import Path

from dsdb_plan.errors import StateError
from dsdb_plan.state.postgres_store import PostgresStateStore
from dsdb_plan.state.records import (
    HistoryEntry,
    LockInfo,
    ResourceRecord,
    StateSnapshot,
    resource_history,
)
from dsdb_plan.state.sqlite_store import SqliteStateStore
from dsdb_plan.state.store import StateStore, holder_liveness

__all__ = [
    "HistoryEntry",
    "LockInfo",
    "PostgresStateStore",
    "ResourceRecord",
    "SqliteStateStore",
    "StateSnapshot",
    "StateStore",
    "holder_liveness",
    "open_state",
    "resource_history",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open_state(location: str, base_dir: Path) -> StateStore:
    """The store at `location`: a file path (relative to `base_dir`) or a URL.

    `sqlite:///relative/state.db` and `sqlite:////absolute/state.db` follow SQLAlchemy's
    spelling. `postgresql://`, `postgres://` and `postgresql+<driver>://` URLs open the shared
    PostgreSQL store. Nothing is created (or connected to) until it is used.
    """
    match = _SCHEME.match(location)
    if match is None:
        return SqliteStateStore(_resolve(location, base_dir))
    scheme = match.group(1).lower()
    if scheme == "sqlite":
        rest = location[match.end() :]
        if not rest.startswith("/") or rest == "/":
            raise StateError(
                "a SQLite state URL needs a file: sqlite:///relative/state.db or "
                "sqlite:////absolute/state.db"
            )
        return SqliteStateStore(_resolve(rest[1:], base_dir))
    if scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+"):
        # Any driver spelling opens with psycopg 3: the URL's parts mean the same to libpq.
        return PostgresStateStore(location)
    # Only the scheme is named: the rest of a URL may hold a password.
    raise StateError(
        f"unsupported state location '{scheme}://...': use a file path, sqlite:///path "
        "or a postgresql:// URL"
    )


def _resolve(path: str, base_dir: Path) -> Path:
    file = Path(path).expanduser()
    return file if file.is_absolute() else Path(base_dir) / file
