"""`dsdb verify`: compare every migration's target with its source subset, on demand."""

from __future__ import annotations

from pathlib import Path

import click

from dsdb_plan.cli.app import cli
from dsdb_plan.cli.options import manifest_argument, open_project, variable_options
from dsdb_plan.cli.output import Output
from dsdb_plan.errors import DsdbError
from dsdb_plan.kinds.migration import selections, table_runs
from dsdb_plan.migrate.verify import verify_table

pass_output = click.make_pass_decorator(Output)


@cli.command()
@manifest_argument
@variable_options
@click.option("--target", multiple=True, metavar="ADDR", help="Only this migration (repeatable).")
@pass_output
def verify(
    out: Output,
    manifest: Path,
    var: tuple[str, ...],
    var_file: tuple[Path, ...],
    target: tuple[str, ...],
) -> int:
    """Check that each migration's target holds exactly its source subset."""
    mismatches = checked = 0
    with open_project(manifest, var, var_file) as project:
        snapshot = project.store.read()
        for name, spec in sorted(project.loaded.manifest.migrations.items()):
            address = f"migration.{name}"
            if target and address not in target:
                continue
            source = project.workspace.reach(spec.source)
            destination = project.workspace.reach(spec.target)
            record = snapshot.resources.get(address)
            for run in table_runs(spec, selections(source, spec), record):
                checked += 1
                selection = run.selection
                with source.connect() as source_conn, destination.connect() as target_conn:
                    verdict = verify_table(
                        source_conn, selection, target_conn, selection.target, exact=run.exact
                    )
                label = f"{address} {selection.name} → {spec.target}.{selection.target}"
                if verdict.ok:
                    out.echo(
                        out.style("✓", fg="green") + f" {label}: {verdict.source.rows:,} rows match"
                    )
                else:
                    mismatches += 1
                    out.echo(out.style("✗", fg="red") + f" {label}: {verdict.message}", err=True)
    if not checked:
        raise DsdbError("no migration to verify")
    out.echo(f"{checked - mismatches} of {checked} tables verified.")
    return 1 if mismatches else 0
