"""The `dsdb` group, its global options, and the one place errors become exit codes."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

import click

from dsdb_plan import __version__
from dsdb_plan.cli.output import Output
from dsdb_plan.errors import DsdbError
from dsdb_plan.redact import redact


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dsdb", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.option("--no-color", is_flag=True, help="Plain text output (also when NO_COLOR is set).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, no_color: bool) -> None:
    """Declarative plan/apply for moving datasets between databases."""
    plain = no_color or bool(os.environ.get("NO_COLOR"))  # https://no-color.org
    ctx.obj = Output(color=False if plain else None, debug=debug)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of exiting (so tests can call it)."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None, prog_name="dsdb", standalone_mode=False
        )
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.UsageError as error:
        error.show()
        return 1  # not click's 2: `--detailed-exitcode` keeps 2 for "changes"
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except DsdbError as error:
        click.echo(redact(f"Error: {error.message}"), err=True)
        return error.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except Exception as error:
        if debug:
            click.echo(redact(traceback.format_exc()), err=True)
        click.echo(
            redact(f"Error: unexpected {type(error).__name__}: {error}")
            + ("" if debug else "\n(run with --debug for the traceback; this is a bug in dsdb)"),
            err=True,
        )
        return 1
    return result if isinstance(result, int) else 0
