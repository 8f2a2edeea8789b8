"""Commands over the state: force-unlock."""

from __future__ import annotations

from pathlib import Path

import click

from dsdb_plan.cli.app import cli
from dsdb_plan.cli.options import manifest_argument, parse_variables, variable_options
from dsdb_plan.cli.output import Output
from dsdb_plan.project import Project

pass_output = click.make_pass_decorator(Output)


@cli.command("force-unlock")
@click.argument("lock_id")
@manifest_argument
@variable_options
@pass_output
def force_unlock(
    out: Output, lock_id: str, manifest: Path, var: tuple[str, ...], var_file: tuple[Path, ...]
) -> None:
    """Release a stuck state lock, given the id the lock error showed."""
    project = Project.open(manifest, variables=parse_variables(var, var_file))
    try:
        released = project.store.force_unlock(lock_id)
    finally:
        project.close()
    out.echo(f"Released the lock held by {released.describe()}.")
