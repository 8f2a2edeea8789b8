"""The commands. Each parses its options and calls the library."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from dsdb_plan.cli.app import cli
from dsdb_plan.cli.options import (
    parse_variables,
    variable_options,
)
from dsdb_plan.cli.output import Output, pass_output
from dsdb_plan.errors import DsdbError
from dsdb_plan.manifest import DEFAULT_MANIFEST, check_structure
from dsdb_plan.plan import counted
from dsdb_plan.schema import manifest_schema_text
from dsdb_plan.schema_docs import manifest_reference


@cli.command()
@click.argument(
    "manifests", nargs=-1, type=click.Path(path_type=Path, dir_okay=False), metavar="[MANIFEST]..."
)
@variable_options
@pass_output
def validate(
    out: Output, manifests: tuple[Path, ...], var: tuple[str, ...], var_file: tuple[Path, ...]
) -> int:
    """Check manifests: syntax, fields, references, cycles (default: dsdb.yaml).

    Secrets need not be set: each unset ${env:NAME} is listed, and plan needs it.

    \b
    Examples:
      dsdb validate
      dsdb validate prod.yaml staging.yaml --var env=staging
    """
    failed = 0
    for manifest in manifests or (Path(DEFAULT_MANIFEST),):
        try:
            loaded, unset = check_structure(manifest, variables=parse_variables(var, var_file))
        except DsdbError as error:
            failed += 1
            out.echo(f"Error: {error.message}", err=True)
            continue
        connections = counted(len(loaded.manifest.connections), "connection")
        resources = counted(len(loaded.manifest.resources()), "resource")
        out.echo(out.style("✓", fg="green") + f" {manifest} is valid ({connections}, {resources}).")
        if unset:
            variables = counted(len({p.message for p in unset}), "environment variable")
            out.echo(f"  {variables} unset, which plan and apply will need:")
            for problem in unset:
                out.echo(f"    {problem}")
    return 1 if failed else 0


@cli.command()
@click.argument(
    "folder", required=False, default=".", type=click.Path(path_type=Path, file_okay=False)
)
@pass_output
def init(out: Output, folder: Path) -> None:
    """Start a manifest: FOLDER/dsdb.yaml and the schema editors check it against.

    \b
    Examples:
      dsdb init
      dsdb init warehouse/
    """
    manifest = folder / DEFAULT_MANIFEST
    if manifest.exists():
        raise DsdbError(f"{manifest} already exists; dsdb init leaves it as it is")
    schema_file = (
        folder / "dsdb.schema.json"
    )  # committed beside it, so teammates' editors check too
    folder.mkdir(parents=True, exist_ok=True)
    schema_file.write_text(manifest_schema_text())
    template = resources.files("dsdb_plan").joinpath("templates", DEFAULT_MANIFEST)
    manifest.write_text(template.read_text())
    out.echo(f"Wrote {manifest} and {schema_file}.")
    out.echo("Keep both in git, add `.dsdb/` and `backups/` to .gitignore, then: dsdb plan")


@cli.command()
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["json", "markdown"]),
    default="json",
    show_default=True,
    help="The JSON Schema, or the reference page written from it (docs/manifest.md).",
)
@pass_output
def schema(out: Output, output_format: str) -> None:
    """Print the manifest's JSON Schema.

    \b
    Examples:
      dsdb schema > dsdb.schema.json
      dsdb schema --format markdown > docs/manifest.md
    """
    text = manifest_schema_text() if output_format == "json" else manifest_reference()
    out.echo(text.rstrip("\n"), verbatim=True)
