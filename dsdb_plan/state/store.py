"""The state store interface, and the helpers every implementation shares.

The planner and executor only ever see `StateStore`; `SqlStateStore` implements it once, over
the SQLite file (issue 3) and the shared PostgreSQL schema (issue 5), which pass the same
conformance tests (tests/test_state.py).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from dsdb_plan.errors import LockError, StateError
from dsdb_plan.redact import redact
from dsdb_plan.state.records import HistoryEntry, LockInfo, ResourceRecord, StateSnapshot
from dsdb_plan.workspace import current_user

_LOCK_POLL_SECONDS = 0.2

_Loaded = TypeVar("_Loaded")


class StateStore(Protocol):
    """Where applies record what they did.

    Rules every implementation keeps:

    - `serial` grows by exactly one with every write that changes the state (resources or
      checkpoints) and never otherwise: reads, locks, history and writes that change nothing
      leave it alone. Each write method returns the serial after the write.
    - `lineage` is a uuid set when the state is created and never changes.
    - Every write is one transaction: a crash at any instant leaves the previous or the new
      state, readable.
    - Reading a state that does not exist yet returns `StateSnapshot.empty()` and creates
      nothing (a plan has no side effects).
    - State writes are refused with `LockError` while another process holds the lock.
    - Everything stored passes through `dsdb_plan.redact` first.
    """

    location: str
    """Where the state lives, for messages; never contains a secret."""

    def read(self) -> StateSnapshot:
        """The current state, consistent as of one serial."""
        ...

    def put_resource(self, record: ResourceRecord, *, clear_checkpoint: bool = True) -> int:
        """Record a resource; by default also drop its checkpoint, in the same transaction."""
        ...

    def remove_resource(self, address: str) -> int:
        """Forget a resource and its checkpoint; `StateError` if neither is recorded."""
        ...

    def rename_resource(self, old: str, new: str) -> int:
        """Move a resource and its checkpoint to a new address, and log the move in history
        (entries keep the address they were made under; `resource_history` follows moves)."""
        ...

    def save_checkpoint(self, address: str, data: dict[str, Any]) -> int:
        """Record how far unfinished work on `address` got, so a later apply resumes it."""
        ...

    def clear_checkpoint(self, address: str) -> int:
        """Drop the checkpoint of `address`, if any."""
        ...

    def append_history(self, entry: HistoryEntry) -> None:
        """Append to the history log; it is not state, so the serial does not move."""
        ...

    def history(self, address: str | None = None, limit: int | None = None) -> list[HistoryEntry]:
        """History entries, newest first, optionally of one address and at most `limit`."""
        ...

    def lock(
        self, operation: str, user: str, timeout: float = 0
    ) -> AbstractContextManager[LockInfo]:
        """Hold the state lock for the `with` block; released on exit, also on exception.

        Fails at once with `LockError` describing the holder, or polls for up to `timeout`
        seconds first.
        """
        ...

    def lock_holder(self) -> LockInfo | None:
        """Who holds the lock now, if anyone."""
        ...

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Release someone else's lock; `LockError` unless `lock_id` is the current lock's."""
        ...

    def replace_all(self, snapshot: StateSnapshot) -> int:
        """Make the state hold exactly the snapshot's resources and checkpoints, in one write.

        The store keeps its own lineage (a never-written store adopts the snapshot's) and its
        serial grows by one; refusing a foreign lineage or an older serial is the caller's
        policy (`dsdb state push`).
        """
        ...

    def close(self) -> None:
        """Release connections; the store must not be used afterwards."""
        ...


def utc_now() -> str:
    """Now, as the ISO 8601 UTC text every record uses."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def this_host() -> str:
    return socket.gethostname()


def acting(holder: LockInfo | None) -> dict[str, str]:
    """Who makes a state change, for its history entry: the lock holder when there is one
    (`user`, `host` and `at`, the time now)."""
    if holder is not None:
        return {"user": holder.user, "host": holder.host, "at": utc_now()}
    return {"user": redact(current_user()), "host": this_host(), "at": utc_now()}


def pid_alive(pid: int) -> bool:
    """Whether process `pid` on this host is alive (a lock holder that died can be replaced)."""
    if os.name == "nt" or pid <= 0:
        # os.kill on Windows terminates the process; and pids <= 0 name process groups.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    try:
        # A zombie (dead, not yet reaped by its parent) still answers kill(0).
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def new_lock(operation: str, user: str) -> LockInfo:
    """The lock this process asks for; each attempt to take it sets `since`."""
    return LockInfo(
        id=str(uuid.uuid4()),
        user=redact(user),
        host=this_host(),
        pid=os.getpid(),
        since="",
        operation=operation,
    )


def held_by_this_process(holder: LockInfo) -> bool:
    """Whether `holder` is this process: any store of it may write under its lock."""
    return holder.host == this_host() and holder.pid == os.getpid()


def died_on_this_host(holder: LockInfo) -> bool:
    """A holder that died on this machine. Another host's holder is never judged here."""
    return holder.host == this_host() and not pid_alive(holder.pid)


def holder_liveness(holder: LockInfo) -> str:
    """Whether the lock's holder still runs, as far as this machine can tell."""
    if holder.host != this_host():
        return (
            f"It was taken on another host ({holder.host}): whether process {holder.pid} "
            "still runs there cannot be told from here."
        )
    if pid_alive(holder.pid):
        return (
            f"Its process {holder.pid} is alive on this host: releasing the lock lets another "
            "run write the state while it still works."
        )
    return f"Its process {holder.pid} no longer runs on this host."


def load_stored(location: str, what: str, text: str, build: Callable[[Any], _Loaded]) -> _Loaded:
    """`build` of stored JSON `text`; a `StateError` naming `what` when it is malformed."""
    try:
        return build(json.loads(text))
    except (ValueError, TypeError, KeyError) as error:
        raise StateError(f"state {location}: {what} is malformed ({error})") from None


def _redact_tree(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(key)): _redact_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_tree(item) for item in value]
    return value


def dump_json(value: Any, what: str) -> str:
    """JSON text to store, with every registered secret masked.

    Strings are redacted before encoding, because JSON escaping (quotes, backslashes,
    non-ASCII) could otherwise hide a secret from a text search; the encoded text is checked
    once more in case a secret spans JSON syntax.
    """
    try:
        text = json.dumps(_redact_tree(value), sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise StateError(f"cannot record {what}: not JSON-safe ({error})") from None
    masked = redact(text)
    if masked != text:
        try:
            json.loads(masked)
        except ValueError:
            raise StateError(f"cannot record {what}: it contains a secret") from None
    return masked


def serialized_snapshot(
    snapshot: StateSnapshot,
) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str]]]:
    """A snapshot as the rows `replace_all` stores: (address, kind, status, record JSON) and
    (address, checkpoint JSON), sorted; refuses a record filed under another address."""
    for address, record in snapshot.resources.items():
        if record.address != address:
            raise StateError(f"snapshot lists the record of {record.address} under {address}")
    resources = sorted(
        (address, record.kind, record.status, dump_json(record.to_dict(), address))
        for address, record in snapshot.resources.items()
    )
    checkpoints = sorted(
        (address, dump_json(data, f"the checkpoint of {address}"))
        for address, data in snapshot.checkpoints.items()
    )
    return resources, checkpoints


def lock_message(location: str, holder: LockInfo, waited: float = 0) -> str:
    """The `LockError` text: who holds the lock and how to break it if they are gone."""
    after = f" (waited {waited:g}s)" if waited > 0 else ""
    return (
        f"state {location} is {holder.describe()}{after}. If that run is no longer alive, "
        f"release the lock with: dsdb force-unlock {holder.id}"
    )


def wait_for_lock(attempt: Callable[[], LockInfo | None], location: str, timeout: float) -> None:
    """Call `attempt` until it returns None (lock taken) or `timeout` seconds have passed.

    `attempt` returns the current holder when the lock is taken by someone else.
    """
    deadline = time.monotonic() + max(timeout, 0)
    while True:
        holder = attempt()
        if holder is None:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockError(lock_message(location, holder, waited=timeout))
        time.sleep(min(_LOCK_POLL_SECONDS, remaining))
