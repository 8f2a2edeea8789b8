"""A state file the disk cannot hold reads as a full disk; only a damaged file is "not ours"."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from dsdb_plan.state.storage_errors import free_bytes, is_foreign_file, storage_message

PATH = Path("/srv/project/.dsdb/state.db")
FULL = f"state {PATH}: the disk is full; free some space and run again"


def sqlite_error(message: str, code: int) -> sqlite3.Error:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


@pytest.mark.parametrize(
    ("error", "free", "expected"),
    [
        (
            sqlite_error("database or disk is full", 13),
            10**9,
            f"{FULL} (SQLite: database or disk is full)",
        ),
        (sqlite_error("disk I/O error", 4874), 0, f"{FULL} (SQLite: disk I/O error)"),
        (
            sqlite_error("unable to open database file", 14),
            4096,
            f"{FULL} (SQLite: unable to open database file)",
        ),
        (sqlite_error("disk I/O error", 10), 10**9, f"state {PATH}: disk I/O error"),
        (sqlite_error("disk I/O error", 10), None, f"state {PATH}: disk I/O error"),
        (
            OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
            None,
            f"{FULL} (No space left on device)",
        ),
        (OSError(errno.EACCES, os.strerror(errno.EACCES)), 0, f"state {PATH}: Permission denied"),
    ],
)
def test_storage_message(error: sqlite3.Error | OSError, free: int | None, expected: str) -> None:
    assert storage_message(PATH, error, free) == expected


@pytest.mark.parametrize(
    ("code", "foreign"), [(26, True), (11, True), (10, False), (13, False), (4874, False)]
)
def test_only_a_damaged_or_foreign_file_is_foreign(code: int, foreign: bool) -> None:
    assert is_foreign_file(sqlite_error("x", code)) is foreign


def test_a_real_foreign_file_is_told_apart(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"plain text, not a database\n" * 200)
    with pytest.raises(sqlite3.DatabaseError) as error:
        sqlite3.connect(path).execute("SELECT name FROM sqlite_master")
    assert is_foreign_file(error.value)


def test_free_bytes_of_a_file_not_yet_made_are_those_of_its_nearest_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Path] = []
    monkeypatch.setattr(
        "shutil.disk_usage", lambda folder: asked.append(folder) or SimpleNamespace(free=0)
    )
    free_bytes(tmp_path / "not" / "yet" / "state.db")
    assert asked == [tmp_path]
