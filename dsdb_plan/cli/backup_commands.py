"""`dsdb backups list` and `dsdb backups verify`: the backups recorded in state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from dsdb_plan.cli.app import cli
from dsdb_plan.cli.options import manifest_argument, read_state, variable_options
from dsdb_plan.cli.output import Output, pass_output
from dsdb_plan.errors import DsdbError
from dsdb_plan.plan import counted


def _recorded_backups(
    manifest: Path, var: tuple[str, ...], var_file: tuple[Path, ...]
) -> list[tuple[str, dict[str, Any]]]:
    """(address, artifact) for every backup in state, newest first per resource."""
    snapshot = read_state(manifest, var, var_file)
    return [
        (address, artifact)
        for address, record in sorted(snapshot.resources.items())
        for artifact in record.artifacts
        if "files" in artifact
    ]


@cli.group()
def backups() -> None:
    """Backups recorded in state.

    \b
    Examples:
      dsdb backups list
      dsdb backups verify
    """


@backups.command("list")
@manifest_argument
@variable_options
@pass_output
def list_backups(
    out: Output, manifest: Path, var: tuple[str, ...], var_file: tuple[Path, ...]
) -> None:
    """List recorded backups: id, time, rows, size, folder.

    \b
    Examples:
      dsdb backups list
      dsdb backups list prod.yaml
    """
    found = _recorded_backups(manifest, var, var_file)
    if not found:
        out.echo("No backups recorded.")
        return
    for address, artifact in found:
        present = "" if Path(artifact["path"]).is_dir() else "  (missing on disk)"
        out.echo(
            f"{address}  {artifact['id']}  {artifact.get('created_at', '')}  "
            f"{counted(artifact.get('total_rows', 0), 'row')}  "
            f"{counted(artifact.get('total_bytes', 0), 'byte')}  {artifact['path']}{present}"
        )


@backups.command("verify")
@manifest_argument
@variable_options
@click.option(
    "--id",
    "backup_ids",
    multiple=True,
    metavar="BACKUP_ID",
    help="Verify only this backup (repeatable).",
)
@pass_output
def verify(
    out: Output,
    manifest: Path,
    var: tuple[str, ...],
    var_file: tuple[Path, ...],
    backup_ids: tuple[str, ...],
) -> int:
    """Check every recorded backup: backup.json against the state's record, and each data
    file's size, SHA-256 and row count.

    \b
    Examples:
      dsdb backups verify
      dsdb backups verify --id BACKUP_ID
    """
    from dsdb_plan.archive import verify_backup  # the backup code, for this command alone

    found = [
        (address, artifact)
        for address, artifact in _recorded_backups(manifest, var, var_file)
        if not backup_ids or artifact["id"] in backup_ids
    ]
    bad = 0
    for address, artifact in found:
        try:
            verify_backup(Path(artifact["path"]), recorded=artifact)
        except DsdbError as error:
            bad += 1
            out.echo(
                out.style("✗", fg="red") + f" {address} {artifact['id']}: {error.message}", err=True
            )
        else:
            out.echo(out.style("✓", fg="green") + f" {address} {artifact['id']}")
    out.echo(f"{len(found) - bad} of {counted(len(found), 'backup')} verified.")
    return 1 if bad else 0
