"""What a failed read or write of the state file means, in the user's words.

SQLite reports a full disk as SQLITE_FULL on a write, but a read that must create its WAL
index on a full disk fails with a bare "disk I/O error" (SQLITE_IOERR); the free space of the
disk tells the two apart. Only "not a database" and "malformed" say the file itself is wrong.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26
# Less than this is full for SQLite, which writes whole pages and a WAL beside the file.
_FULL_BELOW_BYTES = 1 << 20
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def is_foreign_file(error: sqlite3.Error) -> bool:
    """Whether `error` says the file is no SQLite database, or a damaged one."""
    code = getattr(error, "sqlite_errorcode", None)
    return code is None or code & 0xFF in (_SQLITE_NOTADB, _SQLITE_CORRUPT)


def free_bytes(path: Path) -> int | None:
    """Free space on the disk that holds `path` (or would), None when it cannot be told."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def storage_message(path: Path, error: sqlite3.Error | OSError, free: int | None) -> str:
    """The `StateError` text for `error` on the state file at `path`, with `free` bytes left."""
    full = f"state {path}: the disk is full; free some space and run again"
    if isinstance(error, OSError):
        if error.errno in _NO_SPACE:
            return f"{full} ({error.strerror})"
        return f"state {path}: {error.strerror or error}"
    code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
    if code == _SQLITE_FULL or (
        code in (_SQLITE_IOERR, _SQLITE_CANTOPEN) and free is not None and free < _FULL_BELOW_BYTES
    ):
        return f"{full} (SQLite: {error})"
    return f"state {path}: {error}"
