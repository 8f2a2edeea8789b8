"""Ctrl-C stays with Python whatever dsdb imports, in whichever thread (polars takes SIGINT
over when imported, and deepdiff imports polars when it is installed)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import ctypes, signal, sys, threading
getsig = ctypes.pythonapi.PyOS_getsig
getsig.argtypes, getsig.restype = [ctypes.c_int], ctypes.c_void_p
python_handler = getsig(signal.SIGINT)
worker = threading.Thread(target=exec, args=(sys.argv[1],))
worker.start()
worker.join()
print(getsig(signal.SIGINT) == python_handler)
"""


def _keeps_ctrl_c(statement: str) -> bool:
    """Whether SIGINT's handler is still Python's after `statement` ran in another thread."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, statement], capture_output=True, text=True, check=True
    )
    return result.stdout.strip() == "True"


def test_importing_the_column_copy_and_the_spec_diff_leaves_sigint_to_python() -> None:
    assert _keeps_ctrl_c("import dsdb_plan.migrate.arrow_copy")
    # deepdiff (and polars with it) is imported by the first spec that changed.
    changed = "from dsdb_plan.specdiff import spec_changes; assert spec_changes({'a': 1}, {'a': 2})"
    assert _keeps_ctrl_c(changed)


def test_the_check_sees_a_library_that_takes_sigint() -> None:
    assert not _keeps_ctrl_c("import polars")
