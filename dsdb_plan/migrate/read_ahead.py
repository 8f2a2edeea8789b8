"""Reading the next item in a worker thread while the caller works on the one before.

A module of its own, with no database driver: a backup reads ahead too, and importing the
loaders here would load psycopg into every backup (issue 15, aim 4: start-up).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def read_ahead_of(items: Iterator[T]) -> Iterator[T]:
    """`items`, each produced by a worker thread while the caller works on the one before.

    Reading and converting a batch is Python work; writing one mostly waits for the database
    (which lets go of the GIL), so the two overlap. At most one item waits, which bounds
    the memory. What `items` raises is raised here; stopping early stops the worker.
    """
    handoff: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.05)
            except queue.Full:
                continue
            return True
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((True, item)):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            offer((False, error))
        else:
            offer((False, None))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="dsdb-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            more, item = handoff.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        worker.join()
