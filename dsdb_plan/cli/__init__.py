"""The `dsdb` command line: thin commands over the library."""

from dsdb_plan.cli import commands
from dsdb_plan.cli.app import cli, main

__all__ = ["cli", "commands", "main", "run"]


def run() -> None:
    """Console-script entry point."""
    raise SystemExit(main())
