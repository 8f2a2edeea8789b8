"""Everything the CLI prints goes through here: secrets masked, colour only on terminals."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import click

from dsdb_plan.redact import redact

# What dsdb's own glyphs become in plain output (--no-color, NO_COLOR): ASCII that a log, a
# dumb terminal or a grep reads alike. Other text, a table's name say, is left as it is.
_ASCII = str.maketrans(
    {
        "↻": "<~>",
        "→": "->",
        "…": "...",
        "—": "-",
        "✓": "ok",
        "✗": "x",
        "·": "|",
        "⚠": "!",
        "─": "-",
        "━": "-",
        "│": "|",
    }
)


def plain_text(text: str) -> str:
    """`text` with dsdb's glyphs spelled in ASCII."""
    return text.translate(_ASCII)


@dataclass
class Output:
    """Where and how the CLI writes; `color=None` means "if stdout is a terminal"."""

    color: bool | None = None
    debug: bool = False

    @property
    def use_color(self) -> bool:
        return sys.stdout.isatty() if self.color is None else self.color

    @property
    def plain(self) -> bool:
        """Asked for plain output (--no-color, NO_COLOR): no colour and no glyphs."""
        return self.color is False

    def echo(self, text: str = "", *, err: bool = False, verbatim: bool = False) -> None:
        """Print `text`; `verbatim` keeps its glyphs in plain output too (a Markdown plan
        is for a pull request, not a terminal)."""
        text = redact(text)
        click.echo(
            text if verbatim or not self.plain else plain_text(text), err=err, color=self.use_color
        )

    def style(self, text: str, **styles: object) -> str:
        return click.style(text, **styles) if self.use_color else text  # type: ignore[arg-type]


pass_output = click.make_pass_decorator(Output)
"""Hands a command the `Output` the `dsdb` group made."""
