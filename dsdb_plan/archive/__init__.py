"""Portable, self-describing backups: write, read, verify, list and restore them.

A backup is a folder `<root>/<backup_id>/` with `backup.json` (format version, id, time,
source dialect, every table's portable schema, and per data file its table, rows, size and
SHA-256) and one data file per table: Parquet (`columnar`), or the gzip'd JSON lines of
format versions 1 and 2 (`format`; `datafile` tells them apart); `integrity` checks
that they agree with each other and with the state's record before a restore writes.
"""

import os

# Arrow allocates from the C library's allocator, unless told otherwise: with its default
# (mimalloc) a backup or a restore of the same rows kept 35 to 70 MB more resident. Read when
# pyarrow loads (by `columnar` and `column_reader`, when a Parquet file is first read or
# written), and the Parquet reader takes no pool of its own, hence the environment.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

from typing import TYPE_CHECKING, Any

from dsdb_plan.archive.info import BackupFile, BackupInfo, new_backup_id
from dsdb_plan.archive.integrity import check_backup, verify_backup, verify_data
from dsdb_plan.archive.reader import iter_rows, list_backups, read_backup_info
from dsdb_plan.archive.writer import remove_stale_temporaries, write_backup

if TYPE_CHECKING:
    from dsdb_plan.archive.restore import RestoreResult, restore_backup, tables_with_data

#: Loaded when first asked for: restoring brings the migration's loaders and psycopg, about
#: a tenth of a backup's start-up, which a backup does not need (issue 15, aim 4).
_RESTORE = frozenset({"RestoreResult", "restore_backup", "tables_with_data"})


def __getattr__(name: str) -> Any:
    if name in _RESTORE:
        from dsdb_plan.archive import restore

        return getattr(restore, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BackupFile",
    "BackupInfo",
    "RestoreResult",
    "check_backup",
    "iter_rows",
    "list_backups",
    "new_backup_id",
    "read_backup_info",
    "remove_stale_temporaries",
    "restore_backup",
    "tables_with_data",
    "verify_backup",
    "verify_data",
    "write_backup",
]
