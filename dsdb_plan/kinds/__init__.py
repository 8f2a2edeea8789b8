"""Resource kinds by name: each plans and applies one kind of resource."""

from __future__ import annotations

from dsdb_plan.errors import DsdbError
from dsdb_plan.kinds.backup import BackupKind
from dsdb_plan.kinds.base import ApplyContext, Kind, Outcome, PlanContext
from dsdb_plan.kinds.migration import MigrationKind
from dsdb_plan.kinds.restore import RestoreKind
from dsdb_plan.kinds.teardown import TeardownKind

KINDS: dict[str, Kind] = {
    "backup": BackupKind(),
    "migration": MigrationKind(),
    "restore": RestoreKind(),
    "teardown": TeardownKind(),
}


def kind_of(name: str) -> Kind:
    """The handler for resource kind `name`; an unknown kind is a loud error."""
    try:
        return KINDS[name]
    except KeyError:
        raise DsdbError(f"resources of kind '{name}' are not supported by this dsdb") from None


__all__ = ["KINDS", "ApplyContext", "Kind", "Outcome", "PlanContext", "kind_of"]
