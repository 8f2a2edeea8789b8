"""The `dsdb` command's entry point: `dsdb --version` answers before the command line, its
models and drivers are loaded (a tenth of a second instead of half a second)."""

from __future__ import annotations

import sys


def run() -> None:
    """Console-script entry point."""
    if sys.argv[1:] == ["--version"]:
        from dsdb_plan._version import __version__

        print(f"dsdb {__version__}")
        raise SystemExit(0)
    from dsdb_plan.cli import run as run_cli

    run_cli()
