"""`ConnectionManager`: the notebook API, descended from the original dataset-database package.

It holds a map of named connections, checks each one as the manifest does (one model, one
validation path), and runs backups, restores, migrations and teardowns as one-resource plans
applied by the same payload handlers as `dsdb apply` (`oneoff`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import ValidationError

from dsdb_plan.archive import BackupInfo, RestoreResult, list_backups
from dsdb_plan.connection import Connection
from dsdb_plan.errors import (
    ArgumentError,
    ConnectionConfigError,
    ConnectionExistsError,
    ConnectionTypeError,
    DsdbError,
    LinkExistsError,
    ManifestError,
    MissingDriverError,
    MissingLinkError,
    UnknownConnectionError,
)
from dsdb_plan.interpolate import interpolate
from dsdb_plan.manifest import data_path
from dsdb_plan.migrate.run import TableOutcome
from dsdb_plan.models import Backup, Migration, Restore, Teardown
from dsdb_plan.oneoff import run_once
from dsdb_plan.workspace import Workspace, current_user
from dsdb_plan.yamlsource import Source, load_yaml

LOCAL = "LOCAL"
DEFAULT_LOCAL_STORE = Path("local_database") / "local.db"

_ERRORS_BY_TYPE: dict[str, type[ConnectionConfigError]] = {
    "missing_driver": MissingDriverError,
    "missing_link": MissingLinkError,
    "link_type": ConnectionTypeError,
    "string_type": ConnectionTypeError,
}


class ConnectionManager:
    """A map of named database connections, checked on the way in.

    >>> mngr = ConnectionManager(LOCAL, local_store="data/local.db", user="analyst")
    >>> mngr.add_connections({"prod": {"driver": "postgresql", "host": "db", "database": "x"}})
    """

    def __init__(
        self,
        config: Mapping[str, Any] | str | Path | None = None,
        user: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.user = user or current_user()
        self._workspace = Workspace(connections={}, backup_root=Path("backups"), user=self.user)
        # What each backup this manager took held when it was taken, by folder: a restore
        # checks that backup.json still says so, as `dsdb apply` checks it against state.
        self._taken: dict[Path, dict[str, Any]] = {}
        if config is not None:
            self.add_connections(config, **kwargs)
        elif kwargs:
            raise TypeError(f"unexpected arguments without a config: {', '.join(kwargs)}")

    # -- the map -------------------------------------------------------------------------

    def add_connections(
        self,
        config: Mapping[str, Any] | str | Path,
        override_existing: bool = False,
        local_store: str | Path | None = None,
    ) -> None:
        """Add connections from a dict, a JSON/YAML file path, or `LOCAL`.

        Every entry is checked before any is added, so a bad entry adds nothing.
        """
        entries, base_dir = self._entries(config, local_store)
        checked = {name: self._check(name, entry, base_dir) for name, entry in entries.items()}
        if not override_existing:
            # `add_connections(LOCAL)` asks for a name, as in the original; a dict names databases.
            self._refuse_clashes(checked, name_first=config == LOCAL)
        for name, connection in checked.items():
            self._workspace.add(name, connection)
            if name == LOCAL and connection.is_sqlite_file:
                Path(connection.link).parent.mkdir(parents=True, exist_ok=True)

    def rename_connection(self, current: str, new: str) -> None:
        """Give connection `current` the name `new`."""
        if current not in self._workspace.connections:
            raise self._unknown(current)
        if new in self._workspace.connections:
            raise ConnectionExistsError(f"A connection named '{new}' already exists.")
        self._workspace.rename(current, new)

    def connection(self, name: str) -> Connection:
        """The checked `Connection` model registered under `name`."""
        try:
            return self._workspace.connections[name]
        except KeyError:
            raise self._unknown(name) from None

    @property
    def connections(self) -> dict[str, Connection]:
        """A copy of the connection map."""
        return dict(self._workspace.connections)

    def __getitem__(self, name: str) -> dict[str, Any]:
        """The connection's config as a dict (the password stays a masked `SecretStr`)."""
        return self.connection(name).model_dump(exclude_defaults=True, exclude_none=True)

    def __contains__(self, name: object) -> bool:
        return name in self._workspace.connections

    def __iter__(self) -> Iterator[str]:
        return iter(self._workspace.connections)

    def __len__(self) -> int:
        return len(self._workspace.connections)

    def __repr__(self) -> str:
        if not self._workspace.connections:
            return f"ConnectionManager(user={self.user!r}, no connections)"
        width = max(len(name) for name in self._workspace.connections)
        lines = [f"ConnectionManager(user={self.user!r})"]
        lines += [
            f"  {name:<{width}}  {connection.dialect:<10}  {connection.display()}"
            for name, connection in self._workspace.connections.items()
        ]
        return "\n".join(lines)

    # -- engines -------------------------------------------------------------------------

    def connect(self, name: str) -> sa.Engine:
        """The SQLAlchemy engine of connection `name`, created once and reused."""
        self.connection(name)
        return self._workspace.engine(name)

    def close(self) -> None:
        """Dispose of every engine this manager opened."""
        self._workspace.close()

    @property
    def backup_root(self) -> Path:
        """Folder that `backup` and `teardown` write backups into (default: ./backups)."""
        return self._workspace.backup_root

    @backup_root.setter
    def backup_root(self, path: str | Path) -> None:
        self._workspace.backup_root = Path(path)

    # -- data movements ------------------------------------------------------------------

    def backup(
        self, name: str, tables: list[str] | None = None, backup_root: str | Path | None = None
    ) -> BackupInfo:
        """Back up connection `name` (all tables or `tables`) into `<backup_root>/<name>/`."""
        workspace = self._workspace
        if backup_root is not None:
            workspace = dataclasses.replace(workspace, backup_root=Path(backup_root))
        spec = _checked(Backup, "backup", {"connection": self._known(name), "tables": tables})
        info: BackupInfo = run_once(workspace, f"backup.{name}", spec).result
        return self._remember(info)

    def restore(
        self,
        backup: str | Path,
        target: str,
        tables: list[str] | None = None,
        replace_existing: bool = False,
        on_dangling: str = "refuse",
    ) -> RestoreResult:
        """Restore into connection `target` a backup folder, or the latest backup taken of
        the connection named `backup`. The backup is verified before anything is written:
        its files' sizes, checksums and row counts, and, for a backup this manager took,
        that `backup.json` still says what it said then. `on_dangling` takes backed-up rows
        whose foreign key points at no row of the backup: "refuse" (an error naming them,
        before anything is written), "skip" or "keep" (without that key)."""
        folder = self._backup_folder(backup)
        spec = _checked(
            Restore,
            "restore",
            {
                "path": str(folder),
                "to": self._known(target),
                "tables": tables,
                "replace_existing": replace_existing,
                "on_dangling": on_dangling,
            },
        )
        taken = list(self._taken.values())
        outcome = run_once(self._workspace, f"restore.{target}", spec, taken=taken)
        result: RestoreResult = outcome.result
        return result

    def migrate(
        self,
        source: str,
        target: str,
        tables: list[str] | Mapping[str, Any] | None = None,
        where: Mapping[str, Any] | None = None,
        mode: str = "upsert",
        follow: str = "none",
        batch_size: int = 10_000,
        parallelism: int = 1,
        on_dangling: str = "refuse",
        verify: str = "content",
    ) -> list[TableOutcome]:
        """Copy all or a subset of `source` into `target`, as a `migrations:` entry would.

        `tables` is a list of names or a map of name to options (`where`, `columns`,
        `rename_to`, `key`, `mode`, ...); `where` applies to every listed table that has no
        `where` of its own. Every copied table is verified against its source subset.
        `on_dangling` takes rows whose foreign key points at no copied row: "refuse" (an
        error naming them, before anything is written), "skip" or "keep". `verify="counts"`
        compares row counts instead of content, as a migration's `verify: counts`.
        """
        if where is not None and tables is None:
            raise ArgumentError("migrate: `where` needs `tables`: name the tables it filters")
        listed: dict[str, Any] | None = None
        if tables is not None:
            given = (
                {name: {} for name in tables}
                if not isinstance(tables, Mapping)
                else {name: dict(options or {}) for name, options in tables.items()}
            )
            listed = {
                name: {"where": where, **options} if where is not None else options
                for name, options in given.items()
            }
        spec = _migration_spec(
            source, target, listed, mode, follow, batch_size, on_dangling, verify
        )
        for name in (source, target):
            self._known(name)
        address = f"migration.{source}-to-{target}"
        outcome = run_once(self._workspace, address, spec, parallelism=parallelism)
        copied: list[TableOutcome] = outcome.result or []
        return copied

    def teardown(
        self,
        name: str,
        tables: list[str] | None = None,
        drop_database: bool = False,
        final_backup: bool = True,
    ) -> BackupInfo | None:
        """Drop `tables` (default: all) of connection `name`, or the whole database, after a
        final backup into `<backup_root>/_teardown-<name>/` (returned). Refused when the
        connection is protected."""
        spec = _checked(
            Teardown,
            "teardown",
            {
                "connection": self._known(name),
                "tables": tables if tables is not None else "all",
                "drop_database": drop_database,
                "final_backup": final_backup,
            },
        )
        info: BackupInfo | None = run_once(self._workspace, f"teardown.{name}", spec).result
        if info is not None:
            self._remember(info)
        return info

    def _remember(self, info: BackupInfo) -> BackupInfo:
        self._taken[info.path.resolve()] = info.to_dict()
        return info

    def _known(self, name: str) -> str:
        self.connection(name)
        return name

    def _backup_folder(self, backup: str | Path) -> Path:
        if isinstance(backup, str) and backup in self._workspace.connections:
            found = list_backups(self.backup_root / backup)
            if not found:
                raise DsdbError(f"no backup of '{backup}' in {self.backup_root / backup}")
            return found[0].path
        return Path(backup)

    # -- helpers -------------------------------------------------------------------------

    def _entries(
        self, config: Mapping[str, Any] | str | Path, local_store: str | Path | None
    ) -> tuple[dict[str, Any], Path]:
        if config == LOCAL:
            store = Path(local_store) if local_store is not None else DEFAULT_LOCAL_STORE
            return {LOCAL: {"driver": "sqlite", "database": str(store)}}, Path.cwd()
        if local_store is not None:
            raise TypeError("local_store goes with dsdb.LOCAL")
        if isinstance(config, str | Path):
            return _read_config_file(Path(config)), Path(config).resolve().parent
        if not isinstance(config, Mapping):
            raise ConnectionTypeError(
                f"config must be a dict, a file path or dsdb.LOCAL, not {type(config).__name__}"
            )
        return dict(config), Path.cwd()

    def _check(self, name: Any, entry: Any, base_dir: Path) -> Connection:
        if not isinstance(name, str):
            raise ConnectionTypeError(f"Connection names must be strings, not {name!r}.")
        if not isinstance(entry, Mapping):
            raise ConnectionTypeError(
                f"Connection '{name}' must be a mapping of settings, not {type(entry).__name__}."
            )
        try:
            return Connection.model_validate(dict(entry), context={"base_dir": base_dir})
        except ValidationError as error:
            first = error.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            message = str(first["msg"]).removeprefix("Value error, ")
            error_class = _ERRORS_BY_TYPE.get(first["type"], ConnectionConfigError)
            if error_class in (MissingDriverError, MissingLinkError):
                message = message.replace("Connection", f"Connection '{name}'", 1)
            else:
                message = f"Connection '{name}': " + (f"{where}: " if where else "") + message
            raise error_class(message) from None

    def _refuse_clashes(self, checked: dict[str, Connection], *, name_first: bool) -> None:
        links = {c.link_key(): name for name, c in self._workspace.connections.items()}
        for name, connection in checked.items():
            if name_first and name in self._workspace.connections:
                raise self._exists(name)
            holder = links.get(connection.link_key())
            if holder is not None:
                raise LinkExistsError(
                    f"A connection with that link already exists: '{holder}' "
                    f"({connection.display()}); cannot add '{name}'."
                )
            if name in self._workspace.connections:
                raise self._exists(name)
            links[connection.link_key()] = name

    @staticmethod
    def _exists(name: str) -> ConnectionExistsError:
        return ConnectionExistsError(
            f"A connection named '{name}' already exists; "
            "pass override_existing=True to replace it."
        )

    def _unknown(self, name: str) -> UnknownConnectionError:
        known = ", ".join(f"'{n}'" for n in self._workspace.connections) or "none"
        return UnknownConnectionError(f"No connection named '{name}' (known: {known}).")


def _read_config_file(path: Path) -> dict[str, Any]:
    """Connections from a JSON or YAML file: a map of connections, or a manifest."""
    try:
        text = path.read_bytes()
    except OSError as error:
        raise DsdbError(f"cannot read connection config {path}: {error.strerror}") from None
    if path.suffix.lower() == ".json":
        try:
            source = Source(file=str(path), data=json.loads(text))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DsdbError(f"{path}: not valid JSON ({error})") from None
    else:
        source = load_yaml(text, str(path))
    # ${env:NAME} works here as in a manifest: one validation path for both.
    data, problems = interpolate(source)
    if source.problems or problems:
        raise ManifestError([*source.problems, *problems])
    if isinstance(data, dict) and isinstance(data.get("connections"), dict):
        data = data["connections"]
    if not isinstance(data, dict):
        raise DsdbError(f"{path}: expected a mapping of connection names to settings")
    return data


def _migration_spec(
    source: str,
    target: str,
    tables: dict[str, Any] | None,
    mode: str,
    follow: str,
    batch_size: int,
    on_dangling: str,
    verify: str,
) -> Migration:
    """The arguments of `migrate`, checked by the same model as a manifest's migration."""
    data = {
        "from": source,
        "to": target,
        "tables": tables,
        "mode": mode,
        "follow": follow,
        "batch_size": batch_size,
        "on_dangling": on_dangling,
        "verify": verify,
    }
    return _checked(Migration, "migrate", data)


_Spec = TypeVar("_Spec", Backup, Migration, Restore, Teardown)


def _checked(model: type[_Spec], verb: str, data: dict[str, Any]) -> _Spec:
    """The arguments of `verb`, checked by the model a manifest's entry goes through; a
    mistake raises `ArgumentError` naming the argument, as a manifest error names the field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        errors = error.errors(include_url=False, include_input=False)
        # Of a union's branches, the one that got deepest into the arguments names the mistake.
        paths = [data_path(item["loc"], data)[0] for item in errors]
        deepest = max(range(len(errors)), key=lambda i: len(paths[i]))
        where = ".".join(str(part) for part in paths[deepest])
        raise ArgumentError(f"{verb}: {where}: {errors[deepest]['msg']}") from None
