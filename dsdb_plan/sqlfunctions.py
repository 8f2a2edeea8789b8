"""SQL functions dsdb adds to every SQLite connection it opens.

PostgreSQL and MariaDB/MySQL have `md5()`; SQLite has no hash function at all. Sampling
(`migrate/sample.py`) chooses rows by a hash computed in SQL, so that a sample can be a
condition of the source query (and of the subqueries `follow` builds on it): SQLite gets the
same hash as a function, giving the same number for the same text as the servers do.
"""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

#: The name of the hash function on SQLite.
STABLE_HASH = "dsdb_stable_hash"


def stable_hash(text: str | None) -> int | None:
    """The first 32 bits of the MD5 of `text`'s UTF-8, as an unsigned integer."""
    if text is None:
        return None
    return int(hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()[:8], 16)


def install(dbapi_connection: Any, _record: Any = None) -> None:
    """Add dsdb's functions to a new SQLite connection (a pool `connect` listener)."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.create_function(STABLE_HASH, 1, stable_hash, deterministic=True)
