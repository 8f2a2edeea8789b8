"""The runtime around one manifest: connections and their engines, folders, the user.

Planning and applying both work through a Workspace, and so do the notebook methods of
`ConnectionManager`, so the three never disagree about where data and backups live.
"""

from __future__ import annotations

import getpass
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from dsdb_plan.connection import Connection
from dsdb_plan.databases import create_database, database_exists, missing_database_hint
from dsdb_plan.errors import ConnectionFailedError, UnknownConnectionError, driver_message
from dsdb_plan.fingerprint import Fingerprint, fingerprint_database
from dsdb_plan.redact import redact


def current_user() -> str:
    """Who is acting, for history and locks: $DSDB_USER, else the login name."""
    if os.environ.get("DSDB_USER"):
        return os.environ["DSDB_USER"]
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


@dataclass
class Workspace:
    """Named connections with cached engines, plus where backups go and who is acting."""

    connections: dict[str, Connection]
    backup_root: Path
    user: str
    #: The folder relative paths in the manifest are read from: the manifest's own folder
    #: (the current folder for the notebook API).
    base_dir: Path = field(default_factory=Path.cwd)
    _engines: dict[str, sa.Engine] = field(default_factory=dict, repr=False)
    _reached: set[str] = field(default_factory=set, repr=False)
    # Set by apply: a missing database with `create_database: true` is created when reached.
    create_missing: bool = field(default=False, repr=False)
    _absent: dict[str, bool] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def connection(self, name: str) -> Connection:
        try:
            return self.connections[name]
        except KeyError:
            raise UnknownConnectionError(f"No connection named '{name}'.") from None

    def engine(self, name: str) -> sa.Engine:
        """The engine of connection `name`, created once per workspace."""
        with self._lock:  # actions run in threads; one engine per connection all the same
            if name not in self._engines:
                self._engines[name] = self.connection(name).create_engine()
            return self._engines[name]

    def resolve(self, path: str) -> Path:
        """A path written in the manifest, made absolute against the manifest's folder."""
        resolved = Path(path).expanduser()
        return resolved if resolved.is_absolute() else (self.base_dir / resolved).resolve()

    def backups_dir(self, resource: str) -> Path:
        """Folder holding the backups of backup resource `resource`."""
        return self.backup_root / resource

    def add(self, name: str, connection: Connection) -> None:
        """Register (or replace) a connection; a replaced one's engine is disposed."""
        self.forget(name)
        self.connections[name] = connection

    def rename(self, current: str, new: str) -> None:
        self.connections = {
            (new if name == current else name): connection
            for name, connection in self.connections.items()
        }
        if current in self._engines:
            self._engines[new] = self._engines.pop(current)
        if current in self._reached:
            self._reached.discard(current)
            self._reached.add(new)

    def forget(self, name: str) -> None:
        """Dispose of the engine of `name`, if one was opened."""
        engine = self._engines.pop(name, None)
        if engine is not None:
            engine.dispose()
        self._reached.discard(name)

    def reach(self, name: str) -> sa.Engine:
        """The engine, after one successful connect; otherwise a clear error naming the host."""
        engine = self.engine(name)
        if name not in self._reached:
            if self.create_missing and self.is_missing(name) and not self.is_sqlite(name):
                create_database(self.connection(name))
                self._absent[name] = False
            try:
                with engine.connect():
                    pass
            except sa.exc.DBAPIError as error:
                connection = self.connection(name)
                message = driver_message(error)
                raise ConnectionFailedError(
                    redact(
                        f"cannot reach connection '{name}' ({connection.display()}): {message}"
                        + missing_database_hint(connection, name, message)
                    )
                ) from None
            self._reached.add(name)
        return engine

    def is_sqlite(self, name: str) -> bool:
        return self.connection(name).is_sqlite_file

    def is_missing(self, name: str) -> bool:
        """A database that does not exist yet and that apply creates: a SQLite file (reading
        it must not create it), or a server's database with `create_database: true`."""
        connection = self.connection(name)
        if connection.is_sqlite_file:
            return not Path(connection.link).exists()
        if not connection.create_database or name in self._reached:
            return False
        with self._lock:
            if name not in self._absent:
                try:
                    self._absent[name] = not database_exists(connection)
                except sa.exc.DBAPIError:
                    return False  # the server itself is out of reach: `reach` says why
            return self._absent[name]

    def fingerprint(
        self, name: str, tables: list[str] | None, previous: Fingerprint | None = None
    ) -> Fingerprint:
        """The live fingerprint of `tables` (None: all) in connection `name`."""
        if self.is_missing(name):
            return Fingerprint(tables={}, token=None)
        return fingerprint_database(self.reach(name), tables, previous=previous)

    def close(self) -> None:
        """Dispose of every engine opened so far."""
        for name in list(self._engines):
            self.forget(name)
