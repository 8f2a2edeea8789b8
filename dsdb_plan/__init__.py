"""dsdb: declarative plan/apply for moving datasets between databases.

The library side, for notebooks::

    import dsdb_plan as dsdb
    mngr = dsdb.ConnectionManager(dsdb.LOCAL, user="analyst")
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dsdb-plan")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

from dsdb_plan.connection import Connection
from dsdb_plan.errors import (
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
from dsdb_plan.manager import LOCAL, ConnectionManager
from dsdb_plan.manifest import load_manifest

__all__ = [
    "LOCAL",
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
