"""`dsdb references suggest`: likely references for a database that declares none."""

from __future__ import annotations

from pathlib import Path

import click

from dsdb_plan.cli.app import cli
from dsdb_plan.cli.options import manifest_argument, open_project, variable_options
from dsdb_plan.cli.output import Output, pass_output
from dsdb_plan.errors import DsdbError


@cli.group()
def references() -> None:
    """References (virtual foreign keys) for databases that declare none.

    \b
    Examples:
      dsdb references suggest legacy
    """


@references.command("suggest")
@click.argument("connection")
@manifest_argument
@variable_options
@pass_output
def suggest_references(
    out: Output, connection: str, manifest: Path, var: tuple[str, ...], var_file: tuple[Path, ...]
) -> None:
    """List likely references of CONNECTION, with the rows each would leave dangling.

    The YAML printed pastes under the connection's `references:`.

    \b
    Examples:
      dsdb references suggest legacy
      dsdb references suggest legacy prod.yaml
    """
    from dsdb_plan.migrate.suggest import render_yaml, suggest  # for this command alone

    with open_project(manifest, var, var_file) as project:
        if project.workspace.is_missing(connection):
            link = project.workspace.connection(connection).link
            raise DsdbError(f"database {connection} ({link}) does not exist")
        found = suggest(project.workspace.reach(connection))
    out.echo(render_yaml(connection, found).rstrip("\n"))
