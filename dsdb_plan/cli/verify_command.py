"""`dsdb verify`: compare every migration's target with its source subset, on demand."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from dsdb_plan.cli.app import cli
from dsdb_plan.cli.options import manifest_argument, open_project, variable_options
from dsdb_plan.cli.output import Output, pass_output
from dsdb_plan.errors import DsdbError
from dsdb_plan.plan import counted

if TYPE_CHECKING:
    from dsdb_plan.migrate.verify import VerifyLevel


@cli.command()
@manifest_argument
@variable_options
@click.option(
    "--target", multiple=True, metavar="ADDR", help="Verify only this migration (repeatable)."
)
@click.option(
    "--level",
    type=click.Choice(["content", "counts"]),
    default=None,
    help="Compare content or row counts only (default: each migration's own `verify`).",
)
@pass_output
def verify(
    out: Output,
    manifest: Path,
    var: tuple[str, ...],
    var_file: tuple[Path, ...],
    target: tuple[str, ...],
    level: VerifyLevel | None,
) -> int:
    """Check that each migration's target holds exactly its source subset: by content, or
    by row counts for a migration at `verify: counts` (`--level` chooses for all).

    \b
    Examples:
      dsdb verify
      dsdb verify --target migration.ua-winter
      dsdb verify --level content
    """
    mismatches = checked = 0
    with open_project(manifest, var, var_file) as project:
        for verdict in project.verify(target, level):
            checked += 1
            label = f"{verdict.address} {verdict.table} → {verdict.target}"
            if verdict.result.ok:
                rows = verdict.result.source.rows
                verb = "matches" if rows == 1 else "match"
                if verdict.result.counts_only:
                    verb = f"{'is' if rows == 1 else 'are'} there (row counts only)"
                kept = verdict.result.kept
                # Not a mismatch: the mode promises the source's rows, not only them.
                besides = (
                    f"; {counted(kept, 'target row')} whose key the source no longer has "
                    f"{'is' if kept == 1 else 'are'} kept by mode {verdict.mode}"
                    if kept
                    else ""
                )
                out.echo(
                    out.style("✓", fg="green") + f" {label}: {counted(rows, 'row')} {verb}{besides}"
                )
            else:
                mismatches += 1
                out.echo(out.style("✗", fg="red") + f" {label}: {verdict.result.message}", err=True)
    if not checked:
        raise DsdbError("no migration to verify")
    out.echo(f"{checked - mismatches} of {counted(checked, 'table')} verified.")
    return 1 if mismatches else 0
