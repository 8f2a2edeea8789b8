"""Commands over the recorded state: state list/show/rm/mv/pull/push, history, force-unlock."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from dsdb_plan.cli.app import cli
from dsdb_plan.cli.consent import ask_yes
from dsdb_plan.cli.options import (
    manifest_argument,
    open_project,
    open_state_of,
    read_state,
    variable_options,
)
from dsdb_plan.cli.output import Output, pass_output
from dsdb_plan.errors import DsdbError, StateError
from dsdb_plan.manifest import DEFAULT_MANIFEST, LoadedManifest
from dsdb_plan.models import ADDRESS_PATTERN
from dsdb_plan.plan import counted
from dsdb_plan.state import StateSnapshot, StateStore, holder_liveness, resource_history

F = TypeVar("F", bound=Callable[..., Any])
_ADDRESS = re.compile(ADDRESS_PATTERN)


def _manifest_options(function: F) -> F:
    return manifest_argument(variable_options(function))


def _checked_address(address: str) -> str:
    if not _ADDRESS.match(address):
        raise DsdbError(f"'{address}' is not an address (kind.name, e.g. backup.nightly)")
    return address


@cli.group()
def state() -> None:
    """Read and edit the recorded state.

    \b
    Examples:
      dsdb state list
      dsdb state mv migration.old migration.new
    """


@state.command("list")
@_manifest_options
@pass_output
def state_list(
    out: Output, manifest: Path, var: tuple[str, ...], var_file: tuple[Path, ...]
) -> None:
    """Addresses recorded in state, with status and time.

    \b
    Examples:
      dsdb state list
      dsdb state list prod.yaml
    """
    snapshot = read_state(manifest, var, var_file)
    for address, record in sorted(snapshot.resources.items()):
        out.echo(f"{address}  {record.status}  {record.updated_at}")
    for address in sorted(set(snapshot.checkpoints) - set(snapshot.resources)):
        out.echo(f"{address}  unfinished")


@state.command("show")
@click.argument("address", metavar="ADDR")
@_manifest_options
@pass_output
def state_show(
    out: Output, address: str, manifest: Path, var: tuple[str, ...], var_file: tuple[Path, ...]
) -> None:
    """One recorded resource, as JSON.

    \b
    Examples:
      dsdb state show backup.nightly
    """
    snapshot = read_state(manifest, var, var_file)
    record = snapshot.resources.get(address)
    if record is None and address not in snapshot.checkpoints:
        raise StateError(f"{address} is not in the state")
    shown = {
        "record": record.to_dict() if record else None,
        "checkpoint": snapshot.checkpoints.get(address),
    }
    out.echo(json.dumps(shown, indent=2, ensure_ascii=False))


@state.command("rm")
@click.argument("address", metavar="ADDR")
@_manifest_options
@pass_output
def state_rm(
    out: Output, address: str, manifest: Path, var: tuple[str, ...], var_file: tuple[Path, ...]
) -> None:
    """Forget a resource; its data and files are left untouched.

    \b
    Examples:
      dsdb state rm restore.into-scratch
    """
    with open_project(manifest, var, var_file) as project, project.locked("state rm"):
        serial = project.store.remove_resource(address)
    out.echo(f"Forgot {address} (state serial {serial}). No data was touched.")


@state.command("mv")
@click.argument("old")
@click.argument("new")
@_manifest_options
@pass_output
def state_mv(
    out: Output,
    old: str,
    new: str,
    manifest: Path,
    var: tuple[str, ...],
    var_file: tuple[Path, ...],
) -> None:
    """Move a resource's record to a new address (a rename; nothing runs again).

    \b
    Examples:
      dsdb state mv migration.to-prod migration.ua-winter
    """
    if old.split(".")[0] != _checked_address(new).split(".")[0]:
        raise DsdbError(f"cannot move {old} to {new}: a resource keeps its kind")
    with open_project(manifest, var, var_file) as project, project.locked("state mv"):
        serial = project.store.rename_resource(old, new)
    out.echo(f"Moved {old} to {new} (state serial {serial}).")


@state.command("pull")
@_manifest_options
@pass_output
def state_pull(
    out: Output, manifest: Path, var: tuple[str, ...], var_file: tuple[Path, ...]
) -> None:
    """Print the whole state as JSON (secrets are never in it).

    \b
    Examples:
      dsdb state pull > state.json
    """
    snapshot = read_state(manifest, var, var_file)
    out.echo(json.dumps(snapshot.to_dict(), indent=2, ensure_ascii=False))


@state.command("push")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@_manifest_options
@click.option("--force", is_flag=True, help="Push a different lineage or an older serial.")
@pass_output
def state_push(
    out: Output,
    file: Path,
    manifest: Path,
    var: tuple[str, ...],
    var_file: tuple[Path, ...],
    force: bool,
) -> None:
    """Replace the state with FILE (from `dsdb state pull`).

    \b
    Examples:
      dsdb state push state.json
      dsdb state push state.json --force
    """
    try:
        pushed = StateSnapshot.from_dict(json.loads(file.read_text()))
    except json.JSONDecodeError as error:
        raise StateError(
            f"{file} is not a dsdb state document: not JSON "
            f"(line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    except (ValueError, TypeError) as error:
        raise StateError(f"{file} is not a dsdb state document: {error}") from None
    with open_project(manifest, var, var_file) as project, project.locked("state push"):
        current = project.store.read()
        if not force and current.serial > 0:
            if pushed.lineage != current.lineage:
                raise StateError(
                    f"{file} belongs to another state (lineage {pushed.lineage or 'none'}, "
                    f"this state is {current.lineage}); use --force to replace it anyway"
                )
            if pushed.serial < current.serial:
                raise StateError(
                    f"{file} is older than the state (serial {pushed.serial} < "
                    f"{current.serial}); use --force to push it anyway"
                )
        serial = project.store.replace_all(pushed)
    resources = counted(len(pushed.resources), "resource")
    out.echo(f"Pushed {file}: {resources} (state serial {serial}).")


@cli.command()
@click.argument("address", required=False, metavar="[ADDR]")
@click.argument(
    "manifest",
    required=False,
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="[MANIFEST]",
)
@click.option(
    "--manifest",
    "-m",
    "manifest_option",
    type=click.Path(path_type=Path, dir_okay=False),
    hidden=True,  # the older spelling; MANIFEST goes after ADDR, as other commands take it
)
@variable_options
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="How to print the history.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="At most this many entries."
)
@pass_output
def history(
    out: Output,
    address: str | None,
    manifest: Path | None,
    manifest_option: Path | None,
    var: tuple[str, ...],
    var_file: tuple[Path, ...],
    output_format: str,
    limit: int | None,
) -> None:
    """Who applied what, when, with which outcome (newest first).

    ADDR's history includes its history under the addresses it was renamed from.

    \b
    Examples:
      dsdb history
      dsdb history backup.nightly --limit 5
    """
    if manifest is None and address is not None and not _ADDRESS.match(address):
        # `dsdb history MANIFEST`: a lone argument that is no address is the manifest.
        manifest, address = Path(address), None
        if not manifest.exists() and manifest.suffix not in (".yaml", ".yml"):
            raise DsdbError(
                f"'{manifest}' is neither an address (kind.name, e.g. backup.nightly) "
                "nor a manifest file"
            )
    if manifest is not None and manifest_option is not None:
        raise DsdbError("give the manifest once: after ADDR or with -m, not both")
    manifest = manifest or manifest_option or Path(DEFAULT_MANIFEST)
    with open_state_of(manifest, var, var_file) as (loaded, store):
        if address is None:
            entries = store.history(limit=limit)
        else:
            entries = resource_history(store.history(), address)[:limit]
            if not entries and not _is_known(loaded, store, address):
                raise DsdbError(f"no resource {address} in the manifest or the state")
    if output_format == "json":
        out.echo(json.dumps([e.to_dict() for e in entries], indent=2, ensure_ascii=False))
        return
    if not entries:
        out.echo("No history recorded" + (f" for {address}." if address else "."))
        return
    for e in entries:
        size = counted(e.rows, "row") + (f", {counted(e.bytes, 'byte')}" if e.bytes else "")
        out.echo(
            f"{e.started_at}  {e.user}@{e.host}  {e.address}  {e.action}  {e.outcome}  "
            f"{size}  {e.duration_s:.1f}s" + (f"  {e.message}" if e.message else "")
        )


def _is_known(loaded: LoadedManifest, store: StateStore, address: str) -> bool:
    snapshot = store.read()
    return (
        address in loaded.manifest.resources()
        or address in snapshot.resources
        or address in snapshot.checkpoints
    )


@cli.command("force-unlock")
@click.argument("lock_id")
@_manifest_options
@click.option("--force", is_flag=True, help="Release without asking.")
@pass_output
def force_unlock(
    out: Output,
    lock_id: str,
    manifest: Path,
    var: tuple[str, ...],
    var_file: tuple[Path, ...],
    force: bool,
) -> None:
    """Release a stuck state lock, given the id the lock error showed.

    Shows the holder and whether its process is alive on this host, then asks.

    \b
    Examples:
      dsdb force-unlock 3f1c2a9e-...
      dsdb force-unlock 3f1c2a9e-... --force
    """
    with open_state_of(manifest, var, var_file) as (_, store):
        holder = store.lock_holder()
        if holder is not None and holder.id == lock_id and not force:
            out.echo(f"The state is {holder.describe()}.")
            out.echo(holder_liveness(holder))
            answer = ask_yes("Release it? Only 'yes' is accepted")
            if answer is None:
                raise DsdbError("not released: no answer to ask; type or pipe 'yes', or --force")
            if not answer:
                raise DsdbError("not released: consent was not given")
        released = store.force_unlock(lock_id)
    out.echo(f"Released the lock: it was {released.describe()}.")
