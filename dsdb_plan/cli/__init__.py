"""The `dsdb` command line: thin commands over the library."""

import gc

from dsdb_plan.cli import (
    backup_commands,
    commands,
    plan_commands,
    references_command,
    state_commands,
    verify_command,
)
from dsdb_plan.cli.app import cli, main

__all__ = [
    "backup_commands",
    "cli",
    "commands",
    "main",
    "plan_commands",
    "references_command",
    "run",
    "state_commands",
    "verify_command",
]


def run() -> None:
    """Console-script entry point."""
    # What the imports made lives as long as the process: spare the collector walking it
    # again in every full collection while rows stream through.
    gc.freeze()
    raise SystemExit(main())
