"""The runtime around one manifest: connections and their engines, folders, the user.

Planning and applying both work through a Workspace, and so do the notebook methods of
`ConnectionManager`, so the three never disagree about where data and backups live.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from dsdb_plan.connection import Connection
from dsdb_plan.errors import ConnectionFailedError, UnknownConnectionError
from dsdb_plan.fingerprint import Fingerprint, fingerprint_database
from dsdb_plan.redact import redact


@dataclass
class Workspace:
    """Named connections with cached engines, plus where backups go and who is acting."""

    connections: dict[str, Connection]
    backup_root: Path
    user: str
    _engines: dict[str, sa.Engine] = field(default_factory=dict, repr=False)
    _reached: set[str] = field(default_factory=set, repr=False)

    def connection(self, name: str) -> Connection:
        try:
            return self.connections[name]
        except KeyError:
            raise UnknownConnectionError(f"No connection named '{name}'.") from None

    def engine(self, name: str) -> sa.Engine:
        """The engine of connection `name`, created once per workspace."""
        if name not in self._engines:
            self._engines[name] = self.connection(name).create_engine()
        return self._engines[name]

    def backups_dir(self, resource: str) -> Path:
        """Folder holding the backups of backup resource `resource`."""
        return self.backup_root / resource

    def reach(self, name: str) -> sa.Engine:
        """The engine, after one successful connect; otherwise a clear error naming the host."""
        engine = self.engine(name)
        if name not in self._reached:
            try:
                with engine.connect():
                    pass
            except sa.exc.DBAPIError as error:
                cause = " ".join(str(error.orig).split()) or type(error.orig).__name__
                raise ConnectionFailedError(
                    redact(
                        f"cannot reach connection '{name}' "
                        f"({self.connection(name).display()}): {cause}"
                    )
                ) from None
            self._reached.add(name)
        return engine

    def is_missing(self, name: str) -> bool:
        """A SQLite file that does not exist yet (reading it must not create it)."""
        connection = self.connection(name)
        return connection.is_sqlite_file and not Path(connection.link).exists()

    def fingerprint(
        self, name: str, tables: list[str] | None, previous: Fingerprint | None = None
    ) -> Fingerprint:
        """The live fingerprint of `tables` (None: all) in connection `name`."""
        if self.is_missing(name):
            return Fingerprint(tables={}, token=None)
        return fingerprint_database(self.reach(name), tables, previous=previous)

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()

