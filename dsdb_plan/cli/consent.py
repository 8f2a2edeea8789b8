"""Asking for a `yes`: on a terminal, or from a pipe (`echo yes | dsdb apply`), as Terraform
reads its confirmation."""

from __future__ import annotations

import sys

import click


def ask_yes(question: str) -> bool | None:
    """Whether the answer to `question` is exactly `yes`; None when there is none to read
    (standard input closed, empty or not readable), so the caller can say how to consent."""
    click.echo(f"{question}: ", nl=False)
    try:
        line = sys.stdin.readline()
    except (OSError, ValueError):  # no standard input at all (closed, or a test's)
        line = ""
    if not line:
        click.echo("")
        return None
    if not sys.stdin.isatty():
        click.echo(line.rstrip("\n"))  # the piped answer, so a log shows what was consented to
    return line.strip() == "yes"
