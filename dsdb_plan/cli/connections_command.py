"""`dsdb connections`: reach every connection of a manifest."""

from __future__ import annotations

from pathlib import Path

from dsdb_plan.cli.app import cli
from dsdb_plan.cli.options import load_from_options, manifest_argument, variable_options
from dsdb_plan.cli.output import Output, pass_output
from dsdb_plan.plan import counted
from dsdb_plan.probe import probe


@cli.command()
@manifest_argument
@variable_options
@pass_output
def connections(
    out: Output, manifest: Path, var: tuple[str, ...], var_file: tuple[Path, ...]
) -> int:
    """Reach every connection: driver, server version, round-trip time.

    \b
    Examples:
      dsdb connections
      dsdb connections prod.yaml --var env=production
    """
    loaded = load_from_options(manifest, var, var_file)
    results = [probe(name, c) for name, c in loaded.manifest.connections.items()]
    if not results:
        out.echo("No connections declared.")
        return 0
    width = max(len(r.name) for r in results)
    for result in results:
        if result.ok:
            detail = result.server_version or ""
            if result.round_trip_ms is not None:
                detail += f", {result.round_trip_ms:.1f} ms round trip"
            if result.error:
                detail += f" ({result.error})"
            mark = out.style("✓", fg="green")
        else:
            detail = f"cannot connect to {result.dialect} at {result.target}: {result.error}"
            mark = out.style("✗", fg="red")
        out.echo(f"{mark} {result.name:<{width}}  {result.dialect:<10}  {detail}")
    failed = [r.name for r in results if not r.ok]
    if failed:
        out.echo(
            f"{len(failed)} of {counted(len(results), 'connection')} unreachable: "
            + ", ".join(failed),
            err=True,
        )
        return 1
    return 0
