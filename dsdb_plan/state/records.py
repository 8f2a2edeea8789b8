"""What the state store holds: small frozen values that convert to and from JSON-safe dicts.

The records are plain data so any store (SQLite file, PostgreSQL tables, a `state pull` JSON
document) can hold them the same way; `to_dict` output is what gets serialized.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, Self


@dataclass(frozen=True)
class _Record:
    """A record that is its fields as a JSON-safe dict."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        # Unknown keys are ignored so a record written by a newer dsdb with an extra field
        # still loads; a missing required key raises ValueError, which stores report as a
        # StateError.
        _require_fields(data, [f.name for f in fields(cls) if f.default is MISSING])
        known = {f.name for f in fields(cls)}
        return cls(**{key: copy.deepcopy(value) for key, value in data.items() if key in known})


def _require_fields(data: Any, names: list[str]) -> None:
    """A ValueError naming, in words, the fields `data` lacks (or that it is no object)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"expected an object with the fields {_listed(names)}")
    missing = [name for name in names if name not in data]
    if len(missing) == 1:
        raise ValueError(f"the field {_listed(missing)} is missing")
    if missing:
        raise ValueError(f"the fields {_listed(missing)} are missing")


def _listed(names: list[str]) -> str:
    quoted = [f'"{name}"' for name in names]
    return " and ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)


@dataclass(frozen=True)
class ResourceRecord(_Record):
    """One applied resource as recorded: what it was applied with and what it touched."""

    address: str  # "backup.local-nightly"
    kind: str  # "backup", "migration", "restore", "teardown"
    spec: dict[str, Any]  # the resource's spec as applied, secrets removed
    spec_digest: str  # digest of `spec`, so the planner compares specs cheaply
    fingerprints: dict[str, Any]  # data read and written, keyed by the planner's own names
    artifacts: list[dict[str, Any]]  # e.g. backup files with sizes and SHA-256
    status: str  # e.g. "applied", "failed"; the executor decides the vocabulary
    updated_at: str  # ISO 8601 UTC, "2026-11-27T05:10:00Z"


@dataclass(frozen=True)
class HistoryEntry(_Record):
    """One action as it ran: who, when, what, how it ended. `id` is set by the store."""

    address: str
    action: str
    user: str
    host: str
    started_at: str
    finished_at: str
    outcome: str
    rows: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    message: str = ""
    id: int | None = None

    @property
    def moved_from(self) -> str | None:
        """The address a move entry renamed to this one; None for other entries."""
        if self.action != MOVE_ACTION or not self.message.startswith(_MOVED_FROM):
            return None
        return self.message.removeprefix(_MOVED_FROM)


MOVE_ACTION = "move"
_MOVED_FROM = "moved from "


def move_entry(old: str, new: str, *, user: str, host: str, at: str) -> HistoryEntry:
    """The history entry of a rename from `old` to `new` (`moved:` or `dsdb state mv`)."""
    return HistoryEntry(
        address=new,
        action=MOVE_ACTION,
        user=user,
        host=host,
        started_at=at,
        finished_at=at,
        outcome="ok",
        message=_MOVED_FROM + old,
    )


def resource_history(entries: list[HistoryEntry], address: str) -> list[HistoryEntry]:
    """The entries (newest first) of the resource now at `address`, with its actions
    (`backup.x#prune`): back past each rename to it under the old address, and not past a
    rename away from an address it holds, where an earlier resource's history begins."""
    names = {address}
    found = []
    for entry in entries:
        if entry.address.partition("#")[0] in names:
            found.append(entry)
            if entry.moved_from is not None:
                names.add(entry.moved_from)
        elif entry.moved_from in names:
            names.discard(entry.moved_from)
    return found


@dataclass(frozen=True)
class LockInfo(_Record):
    """The holder of the state lock, as shown to whoever is kept waiting."""

    id: str
    user: str
    host: str
    pid: int
    since: str
    operation: str

    def describe(self) -> str:
        """`locked by analyst@host (pid 123) since 2026-11-27T05:10:00Z for apply; lock id …`"""
        return (
            f"locked by {self.user}@{self.host} (pid {self.pid}) since {self.since} "
            f"for {self.operation}; lock id {self.id}"
        )


@dataclass(frozen=True)
class StateSnapshot:
    """The whole recorded state at one serial: resources and unfinished work's checkpoints.

    `lineage` is "" and `serial` 0 for a state that was never written.
    """

    lineage: str
    serial: int
    resources: dict[str, ResourceRecord]
    checkpoints: dict[str, dict[str, Any]]

    @classmethod
    def empty(cls) -> StateSnapshot:
        return cls(lineage="", serial=0, resources={}, checkpoints={})

    def to_dict(self) -> dict[str, Any]:
        return {
            "lineage": self.lineage,
            "serial": self.serial,
            "resources": {address: r.to_dict() for address, r in sorted(self.resources.items())},
            "checkpoints": copy.deepcopy(dict(sorted(self.checkpoints.items()))),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StateSnapshot:
        _require_fields(data, ["lineage", "serial"])
        if not isinstance(data["serial"], int | str) or not str(data["serial"]).isdigit():
            raise ValueError('the field "serial" is not a whole number')
        sections = {name: data.get(name, {}) for name in ("resources", "checkpoints")}
        for name, section in sections.items():
            if not isinstance(section, Mapping):
                raise ValueError(f'the field "{name}" is not an object')
        resources = {}
        for address, record in sections["resources"].items():
            try:
                resources[address] = ResourceRecord.from_dict(record)
            except ValueError as error:
                raise ValueError(f"resource {address}: {error}") from None
        return cls(
            lineage=str(data["lineage"]),
            serial=int(data["serial"]),
            resources=resources,
            checkpoints=copy.deepcopy(dict(sections["checkpoints"])),
        )
