"""Imports that leave Ctrl-C with Python.

polars installs its own SIGINT handler when it is imported (to interrupt its own queries),
and deepdiff imports polars whenever it is installed. While that handler is installed,
Python's runs only once polars hands the signal on: Ctrl-C during an apply would wait for the
apply to end. `python_keeps_ctrl_c` puts back the handler Python had once the import is done,
from whichever thread imports (`signal.signal` works only in the main thread, so through the
C API's `PyOS_getsig`/`PyOS_setsig`).
"""

from __future__ import annotations

import ctypes
import signal
from collections.abc import Iterator
from contextlib import contextmanager

_getsig = ctypes.pythonapi.PyOS_getsig
_getsig.argtypes = [ctypes.c_int]
_getsig.restype = ctypes.c_void_p
_setsig = ctypes.pythonapi.PyOS_setsig
_setsig.argtypes = [ctypes.c_int, ctypes.c_void_p]
_setsig.restype = ctypes.c_void_p


@contextmanager
def python_keeps_ctrl_c() -> Iterator[None]:
    """Within: imports may install their own SIGINT handler; after: Python's is back."""
    handler = _getsig(signal.SIGINT)
    try:
        yield
    finally:
        _setsig(signal.SIGINT, handler)
