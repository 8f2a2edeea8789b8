"""Resource kinds by name: each plans and applies one kind of resource.

A kind's module is imported the first time a resource of that kind is planned or applied:
commands that plan nothing (validate, state, history, --help) do not load the archive and
copy code the kinds bring with them.
"""

from __future__ import annotations

import functools
import importlib
import threading

from dsdb_plan.errors import DsdbError
from dsdb_plan.kinds.base import ApplyContext, Kind, Outcome, PlanContext

#: Kind name -> (module, class) of its handler.
_HANDLERS = {
    "backup": ("dsdb_plan.kinds.backup", "BackupKind"),
    "migration": ("dsdb_plan.kinds.migration", "MigrationKind"),
    "restore": ("dsdb_plan.kinds.restore", "RestoreKind"),
    "teardown": ("dsdb_plan.kinds.teardown", "TeardownKind"),
}
# Resources are planned in threads: one imports at a time, so that two kinds importing the
# same modules cannot meet halfway (a concurrent circular import yields a partial module).
_importing = threading.Lock()


@functools.cache
def kind_of(name: str) -> Kind:
    """The handler for resource kind `name`; an unknown kind is a loud error."""
    try:
        module, handler = _HANDLERS[name]
    except KeyError:
        raise DsdbError(f"resources of kind '{name}' are not supported by this dsdb") from None
    with _importing:
        kind: Kind = getattr(importlib.import_module(module), handler)()
    return kind


__all__ = ["ApplyContext", "Kind", "Outcome", "PlanContext", "kind_of"]
