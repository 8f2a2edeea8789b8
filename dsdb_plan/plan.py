"""The Plan: ordered actions, each with its reasons, and what the plan was computed against.

Actions are small frozen values. Their reasons are for people; what apply does is the
action's typed payload (`payloads`), and nothing else. A plan saved to a file carries the
manifest digest, the state lineage and serial, and the fingerprints it relied on, so `apply`
can refuse it once stale.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dsdb_plan.errors import DsdbError
from dsdb_plan.payloads import Payload, Unchanged, payload_from_dict

FORMAT_VERSION = 2
"""2: actions carry typed payloads (1 carried untyped details, which apply re-derived)."""


def counted(count: int, noun: str) -> str:
    """`1 row`, `2,000 rows`: the numbers in plan reasons."""
    return f"{count:,} {noun}{'s' * (count != 1)}"


class ActionType(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    RESYNC = "resync"
    DESTROY = "destroy"
    NOOP = "no-op"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]

    @property
    def verb(self) -> str:
        """The summary-line phrase: "2 to resync"."""
        return _VERBS[self]


_SYMBOLS = {
    ActionType.CREATE: "+",
    ActionType.UPDATE: "~",
    ActionType.REPLACE: "-/+",
    ActionType.RESYNC: "↻",
    ActionType.DESTROY: "-",
    ActionType.NOOP: " ",
}
_VERBS = {
    ActionType.CREATE: "to create",
    ActionType.UPDATE: "to update",
    ActionType.REPLACE: "to replace",
    ActionType.RESYNC: "to resync",
    ActionType.DESTROY: "to destroy",
    ActionType.NOOP: "unchanged",
}
SUMMARY_ORDER = [
    ActionType.CREATE,
    ActionType.UPDATE,
    ActionType.REPLACE,
    ActionType.RESYNC,
    ActionType.DESTROY,
]


@dataclass(frozen=True)
class Action:
    """One step of a plan, on one resource.

    `key` identifies the action within the plan (a resource can have a second action, such
    as pruning old backups: `backup.nightly#prune`). `destructive` marks actions that delete
    data and need consent. `payload` is exactly what apply will do.
    """

    key: str
    address: str
    kind: str
    type: ActionType
    reasons: tuple[str, ...] = ()
    destructive: bool = False
    depends_on: tuple[str, ...] = ()
    payload: Payload = field(default_factory=lambda: Unchanged({}))
    moved_from: str | None = None
    """The address a `moved:` entry renamed this resource from, in this plan."""

    @classmethod
    def on(
        cls,
        address: str,
        kind: str,
        type: ActionType,
        payload: Payload,
        *,
        reasons: Iterable[str] = (),
        destructive: bool = False,
    ) -> Action:
        """The main action of resource `address` (its key is the address itself)."""
        return cls(
            key=address,
            address=address,
            kind=kind,
            type=type,
            payload=payload,
            reasons=tuple(reasons),
            destructive=destructive,
        )

    @property
    def is_change(self) -> bool:
        return self.type is not ActionType.NOOP

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "address": self.address,
            "kind": self.kind,
            "type": self.type.value,
            "reasons": list(self.reasons),
            "destructive": self.destructive,
            "depends_on": list(self.depends_on),
            "payload": self.payload.to_dict(),
        }
        if self.moved_from is not None:
            data["moved_from"] = self.moved_from
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Action:
        return cls(
            key=data["key"],
            address=data["address"],
            kind=data["kind"],
            type=ActionType(data["type"]),
            reasons=tuple(data.get("reasons", ())),
            destructive=bool(data.get("destructive", False)),
            depends_on=tuple(data.get("depends_on", ())),
            payload=payload_from_dict(data["payload"]),
            moved_from=data.get("moved_from"),
        )


@dataclass(frozen=True)
class Plan:
    """Ordered actions plus what they were computed against."""

    manifest_path: str
    manifest_digest: str
    state_lineage: str
    state_serial: int
    actions: tuple[Action, ...]
    fingerprints: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    created_at: str = ""
    moves: tuple[tuple[str, str], ...] = ()
    """Recorded resources renamed by `moved:` entries, (old, new): state only, no data."""
    checks: tuple[str, ...] = ()
    """How the plan learned whether data changed, per connection whose engine has no cheap
    sign of change (`Engine.change_check`): what a plan there costs grows with the data."""

    @property
    def changes(self) -> list[Action]:
        return [action for action in self.actions if action.is_change]

    @property
    def destructive(self) -> list[Action]:
        return [action for action in self.actions if action.destructive]

    @property
    def has_changes(self) -> bool:
        return bool(self.changes or self.moves)

    def counts(self) -> Counter[ActionType]:
        return Counter(action.type for action in self.actions)

    def summary(self) -> str:
        """`Plan: 1 to create, 2 to resync, 1 to destroy.` or the no-change sentence."""
        counts = self.counts()
        parts = [f"{counts[t]} {t.verb}" for t in SUMMARY_ORDER if counts[t]]
        if self.moves:
            parts.append(f"{len(self.moves)} to move")
        if not parts:
            return "No changes. Reality matches the manifest."
        return "Plan: " + ", ".join(parts) + "."

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "manifest_path": self.manifest_path,
            "manifest_digest": self.manifest_digest,
            "state_lineage": self.state_lineage,
            "state_serial": self.state_serial,
            "created_at": self.created_at,
            "summary": {t.value: n for t, n in sorted(self.counts().items())},
            "actions": [action.to_dict() for action in self.actions],
            "moves": [list(move) for move in self.moves],
            "warnings": list(self.warnings),
            "checks": list(self.checks),
            "fingerprints": self.fingerprints,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise DsdbError(
                f"the plan file has format {version}, this dsdb reads format {FORMAT_VERSION}: "
                "run `dsdb plan -o` again with this dsdb"
            )
        return cls(
            manifest_path=data["manifest_path"],
            manifest_digest=data["manifest_digest"],
            state_lineage=data["state_lineage"],
            state_serial=int(data["state_serial"]),
            actions=tuple(Action.from_dict(a) for a in data["actions"]),
            fingerprints=dict(data.get("fingerprints", {})),
            warnings=tuple(data.get("warnings", ())),
            created_at=data.get("created_at", ""),
            moves=tuple((old, new) for old, new in data.get("moves", ())),
            checks=tuple(data.get("checks", ())),
        )
