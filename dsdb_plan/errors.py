"""One shallow tree of errors. Each carries the context a user needs to act on it.

The CLI maps every `DsdbError` to a message and an exit code in one place; anything else is a
bug and shows a traceback only with `--debug`.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass


class DsdbError(Exception):
    """Base of every error dsdb raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # KeyError subclasses would otherwise quote the message
        return self.message


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest, located as precisely as the input allows."""

    message: str
    path: tuple[str | int, ...] = ()
    file: str | None = None
    line: int | None = None
    column: int | None = None

    @property
    def field(self) -> str:
        return ".".join(str(part) for part in self.path)

    def __str__(self) -> str:
        where = self.file or "<manifest>"
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        field = f"{self.field}: " if self.path else ""
        return f"{where}: {field}{self.message}"


class ManifestError(DsdbError):
    """A manifest that cannot be used; lists every problem found, not only the first."""

    def __init__(self, problems: Sequence[Problem], subject: str = "manifest") -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        header = "1 problem" if count == 1 else f"{count} problems"
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{header} in {subject}:\n{lines}")


class ConnectionConfigError(DsdbError, ValueError):
    """A connection's configuration is wrong; the message names the connection."""


class ConnectionTypeError(ConnectionConfigError, TypeError):
    """A connection field of the wrong type (a driver or link that is not a string)."""


class MissingDriverError(ConnectionConfigError):
    """A connection without a driver."""


class MissingLinkError(ConnectionConfigError):
    """A connection without a link: no database, path or url."""


class ConnectionExistsError(ConnectionConfigError):
    """A connection name that is already registered."""


class LinkExistsError(ConnectionConfigError):
    """The same database already registered under another name."""


class ArgumentError(DsdbError, ValueError):
    """An argument of a `ConnectionManager` call that is not valid; names the argument."""


class UnknownConnectionError(DsdbError, KeyError):
    """A connection name that is not registered."""


class ConnectionFailedError(DsdbError):
    """A database that could not be reached; names host, port and cause."""


class StateError(DsdbError):
    """The state store cannot be read or written."""


class LockError(StateError):
    """The state is locked by another run."""


class PlanError(DsdbError):
    """The manifest cannot be planned against the live databases."""


class StalePlanError(PlanError):
    """A saved plan no longer matches the manifest, the state or the data."""


class ApplyError(DsdbError):
    """One or more actions failed during apply."""


class BackupError(DsdbError):
    """A backup that is missing, corrupted or unreadable; names the file."""


class Interrupted(DsdbError):
    """Work stopped at a batch boundary because a stop was asked for (a first Ctrl-C): what
    it committed is checkpointed, and the next apply resumes from there."""

    exit_code = 130  # 128 + SIGINT, as a shell reports a process Ctrl-C stopped


def did_you_mean(word: object, choices: Sequence[str]) -> str:
    """A " — did you mean '...'?" hint naming the closest of `choices` to `word`, or ""."""
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


def driver_message(error: BaseException) -> str:
    """The database driver's own words for a SQLAlchemy error, on one line, without the
    SQL statement and parameters SQLAlchemy appends (they may hold data)."""
    original = getattr(error, "orig", None) or error
    text = " ".join(str(original).split())
    return text or type(original).__name__


def note_rows_committed(error: BaseException, rows: int) -> None:
    """Note on `error` how many rows the work it stopped had committed (history keeps it)."""
    error.__dict__["dsdb_rows_committed"] = rows


def rows_committed(error: BaseException) -> int:
    """The rows `note_rows_committed` noted on `error`; 0 when nothing was noted."""
    return int(error.__dict__.get("dsdb_rows_committed", 0))
