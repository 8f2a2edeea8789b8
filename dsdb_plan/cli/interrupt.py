"""Ctrl-C and SIGTERM during `dsdb apply`: the first asks the work to stop at its next batch
boundary, the next one stops at once.

Only the CLI installs these handlers. The library takes the `threading.Event` they set
(`Project.apply(cancel=...)`), so a notebook keeps its own KeyboardInterrupt.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

from dsdb_plan.cli.output import Output

ACKNOWLEDGEMENT = "Stopping after the current batch (press Ctrl-C again to stop now)…"
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """While entered, SIGINT and SIGTERM raise KeyboardInterrupt in the main thread (the
    default for Ctrl-C; a CI runner's SIGTERM would otherwise kill the process with the
    state lock held), except the first one inside `graceful()`, which sets its event."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.signum: int = signal.SIGINT
        self._stop = threading.Event()
        self._graceful = False
        self._previous: dict[int, Any] = {}

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process the last signal stopped: 130 for Ctrl-C."""
        return 128 + self.signum

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():  # where Python handles them
            self._previous = {number: signal.signal(number, self._handle) for number in _SIGNALS}
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    @contextmanager
    def graceful(self) -> Iterator[threading.Event]:
        """Within: the first signal sets the event yielded, and says so at once."""
        self._graceful = True
        try:
            yield self._stop
        finally:
            self._graceful = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        if not self._graceful or self._stop.is_set():
            raise KeyboardInterrupt
        self._stop.set()
        text = f"\n{ACKNOWLEDGEMENT}"
        try:
            self.out.echo(text, err=True)
        except RuntimeError:  # the signal came while this thread was writing to stderr
            os.write(2, (text + "\n").encode())
