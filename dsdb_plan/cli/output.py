"""Everything the CLI prints goes through here: secrets masked, colour only on terminals."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import click

from dsdb_plan.redact import redact


@dataclass
class Output:
    """Where and how the CLI writes; `color=None` means "if stdout is a terminal"."""

    color: bool | None = None
    debug: bool = False

    @property
    def use_color(self) -> bool:
        return sys.stdout.isatty() if self.color is None else self.color

    def echo(self, text: str = "", *, err: bool = False) -> None:
        click.echo(redact(text), err=err, color=self.use_color)

    def style(self, text: str, **styles: object) -> str:
        return click.style(text, **styles) if self.use_color else text  # type: ignore[arg-type]


pass_output = click.make_pass_decorator(Output)
"""Hands a command the `Output` the `dsdb` group made."""
