"""dsdb: declarative plan/apply for moving datasets between databases.

The library side, for notebooks::

    import dsdb_plan as dsdb
    mngr = dsdb.ConnectionManager(dsdb.LOCAL, user="analyst")

`ConnectionManager`, `Connection` and `load_manifest` are loaded on first use (PEP 562): the
`dsdb` command, which imports other modules of the package, does not load the notebook API
(and the backup and copy code it brings) with them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dsdb_plan._version import __version__
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

if TYPE_CHECKING:
    from dsdb_plan.connection import Connection
    from dsdb_plan.manager import LOCAL, ConnectionManager
    from dsdb_plan.manifest import load_manifest

#: The module each name loaded on first use comes from.
_LAZY = {
    "LOCAL": "dsdb_plan.manager",
    "Connection": "dsdb_plan.connection",
    "ConnectionManager": "dsdb_plan.manager",
    "load_manifest": "dsdb_plan.manifest",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "LOCAL",
    "ArgumentError",
    "Connection",
    "ConnectionConfigError",
    "ConnectionExistsError",
    "ConnectionManager",
    "ConnectionTypeError",
    "DsdbError",
    "LinkExistsError",
    "ManifestError",
    "MissingDriverError",
    "MissingLinkError",
    "UnknownConnectionError",
    "__version__",
    "load_manifest",
]
