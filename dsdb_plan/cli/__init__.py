"""The `dsdb` command line: thin commands over the library.

Each command's module loads when the command runs (`app.COMMAND_MODULES`).
"""

import gc

from dsdb_plan.cli.app import cli, main

__all__ = ["cli", "main", "run"]


def run() -> None:
    """Console-script entry point."""
    # What the imports made lives as long as the process: spare the collector walking it
    # again in every full collection while rows stream through.
    gc.freeze()
    raise SystemExit(main())
