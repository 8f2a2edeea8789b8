"""What an action will do, exactly: typed, frozen payloads the plan carries and apply executes.

A payload holds everything apply needs and everything the plan promised (the tables to
drop, the backup ids to prune, the tables to copy with their modes and row counts), so a
saved plan does what it showed and nothing else. Apply checks, before it writes, that what
the payload relied on still holds, and refuses naming what moved. Payloads are plain JSON
in plan files: `to_dict` writes the type's tag, `payload_from_dict` reads it back.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from dsdb_plan.errors import DsdbError

Spec = dict[str, Any]
"""A resource's spec as recorded in state (secrets masked)."""

_REGISTRY: dict[str, type[Payload]] = {}
P = TypeVar("P", bound="type[Payload]")


def _tagged(tag: str) -> Callable[[P], P]:
    def register(cls: P) -> P:
        cls.TAG = tag
        _REGISTRY[tag] = cls
        return cls

    return register


@dataclass(frozen=True)
class Payload:
    """The base of every payload: a tag for plan files, and the spec apply records."""

    TAG: ClassVar[str] = ""
    spec: Spec

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TAG, **_plain(dataclasses.asdict(self))}

    def written_connection(self) -> str | None:
        """The connection whose data this payload changes, if any."""
        return None


@_tagged("unchanged")
@dataclass(frozen=True)
class Unchanged(Payload):
    """Nothing to do: reality matches the spec."""


@_tagged("record_settings")
@dataclass(frozen=True)
class RecordSettings(Payload):
    """Only settings that touch no data changed (keep, batch size, a description): the
    record takes the new spec; no data is read or written."""


@_tagged("forget")
@dataclass(frozen=True)
class Forget(Payload):
    """A resource gone from the manifest: its record is forgotten, its data stays."""


@_tagged("take_backup")
@dataclass(frozen=True)
class TakeBackup(Payload):
    """Write a new backup of exactly `tables` of `connection` into `folder`."""

    connection: str
    tables: tuple[str, ...]
    rows: dict[str, int]
    fingerprint: dict[str, Any]
    """The data as planned: lets apply skip re-reading what provably did not move."""
    planned_after: tuple[str, ...] = ()
    """The actions of this plan that write `connection` first: `tables` are those they
    leave there, as their plans tell, and apply refuses if it then holds others."""


@_tagged("prune_backups")
@dataclass(frozen=True)
class PruneBackups(Payload):
    """Delete exactly the backups `ids`; `forget` the record too (the resource is gone)."""

    ids: tuple[str, ...]
    forget: bool = False


@_tagged("teardown")
@dataclass(frozen=True)
class DropTables(Payload):
    """Drop exactly `tables` of `connection` (the whole database when `drop_database`),
    after a final backup into `final_backup` unless that is None."""

    connection: str
    tables: tuple[str, ...]
    rows: dict[str, int]
    drop_database: bool = False
    final_backup: str | None = None

    def written_connection(self) -> str | None:
        return self.connection


@_tagged("restore")
@dataclass(frozen=True)
class RestoreBackup(Payload):
    """Restore backup `backup_id` (None: the one `backup_address` takes in this apply) from
    `path` into `connection`: `tables` of it (None: all). `overwrites` are the target tables
    holding data the plan showed it replaces; any other table of the backup that holds data
    at apply time is refused."""

    connection: str
    backup_id: str | None
    path: str | None
    backup_address: str | None
    tables: tuple[str, ...] | None
    overwrites: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    """The target tables the restore writes, as far as the plan can know them."""
    dangling: tuple[Dangling, ...] | None = None
    """The backup's rows whose reference points at no row of it, which the restore's
    `on_dangling` skips or keeps (it refuses them at plan time); None when the plan could
    not count them (a backup taken in this apply, a damaged file): the apply counts them."""

    def written_connection(self) -> str | None:
        return self.connection


DELETING_MODES = ("replace", "mirror")


@dataclass(frozen=True)
class TableCopy:
    """One source table a migration copies: where to, how, and how many rows the plan said."""

    table: str
    target: str
    mode: str
    rows: int | None
    """The rows the plan counted (None: an incremental copy, counted as it goes)."""
    estimated: bool = False
    held: int = 0
    """The rows the target table held when planned, of which replace and mirror delete
    (all, or those not in the subset): apply refuses to delete from more."""


@dataclass(frozen=True)
class Dangling:
    """The rows of `table` whose `columns` match no copied row of `ref_table`."""

    table: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    rows: int
    #: A few of the values that dangle, as the plan shows them (`repr`, a tuple for several
    #: columns): plan files hold them as they are.
    examples: tuple[str, ...]
    #: Whether other values than `examples` dangle.
    more: bool = False
    #: The masked columns of the key, whose values the plan never shows (`examples` empty).
    masked: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The foreign key as the plan names it: `flights.tailnum → planes.tailnum`."""
        parent = f"{self.ref_table}.{key_columns(self.ref_columns)}"
        return f"{self.table}.{key_columns(self.columns)} → {parent}"

    def describe(self) -> str:
        noun = "row points" if self.rows == 1 else "rows point"
        if self.masked:
            masked = ", ".join(f"{self.table}.{column}" for column in self.masked)
            shown = f"values not shown: {masked} {'is' if len(self.masked) == 1 else 'are'} masked"
        else:
            shown = "e.g. " + ", ".join(self.examples) + (", …" if self.more else "")
        return f"{self.key}: {self.rows:,} {noun} at no copied {self.ref_table} row ({shown})"

    def note(self, policy: str) -> str:
        """The plan line for these rows under `on_dangling` `policy` (`skip` or `keep`)."""
        if policy == "skip":
            return f"skips {self.describe()}, and any rows pointing at those"
        return f"keeps {self.describe()}; that foreign key is left out of the target"


@_tagged("copy")
@dataclass(frozen=True)
class CopyTables(Payload):
    """Copy `tables` (parents first) from `source` into `target`. `source_fingerprint` is
    the source data as planned."""

    source: str
    target: str
    tables: tuple[TableCopy, ...]
    source_fingerprint: dict[str, Any] = field(default_factory=dict)
    dangling: tuple[Dangling, ...] = ()
    """The references that point at no copied row, which the migration's `on_dangling`
    skips or keeps (it refuses them at plan time)."""
    unchanged: tuple[str, ...] = ()
    """Source tables a resync leaves as they are: neither they nor their target tables
    changed since the last apply. Apply refuses if one of them has changed since the plan."""
    planned_after: tuple[str, ...] = ()
    """The actions of this plan that write `source` first: the copy is planned again from
    what they leave there once they have applied, and refused if it would copy other
    tables than `tables` (`tables` from a `follow` that `follows_more` admits aside)."""
    follows_more: bool = False

    def written_connection(self) -> str | None:
        return self.target

    def rows(self) -> dict[str, int]:
        return {copy.table: copy.rows for copy in self.tables if copy.rows is not None}


def payload_from_dict(data: dict[str, Any]) -> Payload:
    """The payload a plan file holds; an unknown type is a clear error."""
    tag = data.get("type")
    cls = _REGISTRY.get(str(tag))
    if cls is None:
        raise DsdbError(f"unknown action payload type {tag!r} (made by a newer dsdb?)")
    return _build(cls, data)


T = TypeVar("T")


def _build(cls: type[T], data: dict[str, Any]) -> T:
    hints = typing.get_type_hints(cls)
    values = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        if item.name in data:
            values[item.name] = _typed(hints[item.name], data[item.name])
    return cls(**values)


def _typed(hint: Any, value: Any) -> Any:
    """`value` read from JSON, as the field type `hint` wants it (tuples, nested records)."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
        origin = typing.get_origin(hint)
    if origin is tuple and isinstance(value, list):
        (item,) = typing.get_args(hint)[:1]
        return tuple(_typed(item, each) for each in value)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return _build(hint, value)  # type: ignore[arg-type]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(each) for each in value]
    if isinstance(value, dict):
        return {key: _plain(each) for key, each in value.items()}
    return value


def key_columns(columns: Sequence[str]) -> str:
    """`tailnum`, or `(a, b)` for a key of several columns."""
    return columns[0] if len(columns) == 1 else f"({', '.join(columns)})"
