"""Ctrl-C stays with Python whatever dsdb imports, in whichever thread (polars takes SIGINT
over when imported, and deepdiff imports polars when it is installed)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import ctypes, importlib, signal, sys, threading
getsig = ctypes.pythonapi.PyOS_getsig
getsig.argtypes, getsig.restype = [ctypes.c_int], ctypes.c_void_p
python_handler = getsig(signal.SIGINT)
worker = threading.Thread(target=importlib.import_module, args=(sys.argv[1],))
worker.start()
worker.join()
print(getsig(signal.SIGINT) == python_handler)
"""


def _keeps_ctrl_c(module: str) -> bool:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, module], capture_output=True, text=True, check=True
    )
    return result.stdout.strip() == "True"


def test_importing_the_column_copy_and_the_spec_diff_leaves_sigint_to_python() -> None:
    assert _keeps_ctrl_c("dsdb_plan.migrate.arrow_copy")
    assert _keeps_ctrl_c("dsdb_plan.specdiff")


def test_the_check_sees_a_library_that_takes_sigint() -> None:
    assert not _keeps_ctrl_c("polars")
