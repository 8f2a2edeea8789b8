"""The `dsdb` group, its global options, and the one place errors become exit codes."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

from dsdb_plan import __version__
from dsdb_plan.cli.output import Output, plain_text
from dsdb_plan.errors import DsdbError
from dsdb_plan.redact import redact


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(Output).debug = True


def _set_no_color(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(Output).color = False


def _global_options() -> list[click.Parameter]:
    """`--debug` and `--no-color`, accepted before the command and after it alike."""
    return [
        click.Option(
            ["--debug"],
            is_flag=True,
            expose_value=False,
            callback=_set_debug,
            help="Show tracebacks for unexpected errors.",
        ),
        click.Option(
            ["--no-color"],
            is_flag=True,
            expose_value=False,
            callback=_set_no_color,
            help="Plain text output (also when NO_COLOR is set).",
        ),
    ]


def _whole_summary(command: click.Command) -> None:
    """Listings show the help's whole first paragraph: click cuts it at 45 characters."""
    if command.short_help is None and command.help:
        command.short_help = " ".join(command.help.split("\n\n")[0].split())


class _Command(click.Command):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_options())
        _whole_summary(self)


class _Group(click.Group):
    """A group whose commands and subgroups all take the global options."""

    command_class = _Command
    group_class = type  # subgroups are _Group too

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_options())
        _whole_summary(self)


#: The module that defines each top-level command. A command's module is imported when the
#: command runs (click's lazy subcommands), so `dsdb validate` does not load what `apply`
#: needs; help listings import them all.
COMMAND_MODULES = {
    "validate": "commands",
    "init": "commands",
    "schema": "commands",
    "connections": "connections_command",
    "plan": "plan_commands",
    "apply": "plan_commands",
    "verify": "verify_command",
    "backups": "backup_commands",
    "references": "references_command",
    "state": "state_commands",
    "history": "state_commands",
    "force-unlock": "state_commands",
}


class _LazyGroup(_Group):
    """The top-level group: each command's module is imported on first use."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(f"dsdb_plan.cli.{module}")  # its decorators register it
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        for module in set(COMMAND_MODULES.values()):
            importlib.import_module(f"dsdb_plan.cli.{module}")
        return super().list_commands(ctx)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dsdb", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Declarative plan/apply for moving datasets between databases.

    \b
    Examples:
      dsdb init && dsdb validate
      dsdb plan
      dsdb apply
    """
    out = ctx.ensure_object(Output)
    if os.environ.get("NO_COLOR"):  # https://no-color.org
        out.color = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of exiting (so tests can call it)."""
    args = argv if argv is not None else sys.argv[1:]
    debug = "--debug" in args
    plain = "--no-color" in args or bool(os.environ.get("NO_COLOR"))

    def error_text(text: str) -> str:
        text = redact(text)
        return plain_text(text) if plain else text

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
        click.echo(error_text(f"Error: {error.message}"), err=True)
        return error.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except Exception as error:
        if debug:
            click.echo(error_text(traceback.format_exc()), err=True)
        click.echo(
            error_text(f"Error: unexpected {type(error).__name__}: {error}")
            + ("" if debug else "\n(run with --debug for the traceback; this is a bug in dsdb)"),
            err=True,
        )
        return 1
    return result if isinstance(result, int) else 0
