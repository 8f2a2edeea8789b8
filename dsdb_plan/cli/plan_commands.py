"""`dsdb plan` and `dsdb apply`."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from dsdb_plan.cli.app import cli
from dsdb_plan.cli.consent import ask_yes
from dsdb_plan.cli.interrupt import Interrupts
from dsdb_plan.cli.options import manifest_argument, open_project, variable_options
from dsdb_plan.cli.output import Output, pass_output
from dsdb_plan.errors import DsdbError
from dsdb_plan.executor import ActionResult, ApplyReport
from dsdb_plan.manifest import DEFAULT_MANIFEST
from dsdb_plan.plan import Action, Plan, counted
from dsdb_plan.planner import drift_only
from dsdb_plan.project import Project
from dsdb_plan.redact import redact
from dsdb_plan.render import render

F = TypeVar("F", bound=Callable[..., Any])
CHANGES_EXIT_CODE = 2
DEFAULT_PARALLELISM = min(4, os.cpu_count() or 1)


def _parallelism_option(help: str) -> Callable[[F], F]:
    return click.option(
        "--parallelism",
        type=click.IntRange(min=1),
        default=DEFAULT_PARALLELISM,
        show_default=True,
        help=help,
    )


def _selection_options(verb: str) -> Callable[[F], F]:
    def decorate(function: F) -> F:
        function = click.option(
            "--exclude", multiple=True, metavar="ADDR", help="Leave this resource out (repeatable)."
        )(function)
        return click.option(
            "--target",
            multiple=True,
            metavar="ADDR",
            help=f"{verb} only this resource (repeatable).",
        )(function)

    return decorate


@cli.command()
@manifest_argument
@variable_options
@_selection_options("Plan")
@click.option(
    "-o",
    "--out",
    "plan_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Save the plan for `dsdb apply PLANFILE`.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
    help="How to print the plan.",
)
@click.option(
    "--refresh-only",
    is_flag=True,
    help="Only report data that changed since the last apply (drift); plan nothing else.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there are no changes, 2 when there are, 1 on error.",
)
@_parallelism_option("Plan up to this many independent resources at once.")
@pass_output
def plan(
    out: Output,
    manifest: Path,
    var: tuple[str, ...],
    var_file: tuple[Path, ...],
    target: tuple[str, ...],
    exclude: tuple[str, ...],
    plan_file: Path | None,
    output_format: str,
    refresh_only: bool,
    detailed_exitcode: bool,
    parallelism: int,
) -> int:
    """Show what apply would change, and why.

    \b
    Examples:
      dsdb plan
      dsdb plan --format markdown --detailed-exitcode
      dsdb plan -o plan.json --target migration.ua-winter
    """
    if refresh_only and plan_file is not None:
        raise DsdbError("a --refresh-only plan reports drift; it cannot be saved for apply")
    with open_project(manifest, var, var_file) as project:
        result = _plan(out, project, target, exclude, parallelism)
    if refresh_only:
        result = drift_only(result)
    rendered = render(result, output_format, color=out.use_color).rstrip("\n")
    out.echo(rendered, verbatim=output_format != "text")
    if plan_file is not None:
        plan_file.parent.mkdir(parents=True, exist_ok=True)
        plan_file.write_text(redact(result.to_json()))
        out.echo(
            f"\nSaved the plan to {plan_file}. Apply it with: dsdb apply {plan_file}",
            err=output_format != "text",
        )
    return CHANGES_EXIT_CODE if detailed_exitcode and result.has_changes else 0


def _read_plan_file(path: Path) -> Plan | None:
    """The saved plan at `path`, or None when `path` is a manifest."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        if path.suffix == ".json":
            raise DsdbError(f"plan file not found: {path}") from None
        return None
    except (OSError, UnicodeDecodeError):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        if path.suffix == ".json":
            raise DsdbError(f"{path} is not a dsdb plan file: not JSON") from None
        return None
    if not isinstance(data, dict) or "actions" not in data:
        if path.suffix == ".json":
            raise DsdbError(f"{path} is not a dsdb plan file (from `dsdb plan -o`)")
        return None
    try:
        return Plan.from_dict(data)
    except (ValueError, KeyError, TypeError) as error:
        raise DsdbError(f"{path} is not a dsdb plan file: {error!r} is missing or wrong") from None


@cli.command()
@click.argument(
    "source",
    required=False,
    default=DEFAULT_MANIFEST,
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="[MANIFEST|PLANFILE]",
)
@variable_options
@_selection_options("Apply")
@click.option("--auto-approve", is_flag=True, help="Apply without asking (for CI).")
@click.option(
    "--allow-destroy", is_flag=True, help="Consent to destructive actions without a prompt."
)
@_parallelism_option("Run (and plan) up to this many independent actions at once.")
@click.option(
    "--lock-timeout",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Wait this long for another run's state lock.",
)
@pass_output
def apply(
    out: Output,
    source: Path,
    var: tuple[str, ...],
    var_file: tuple[Path, ...],
    target: tuple[str, ...],
    exclude: tuple[str, ...],
    auto_approve: bool,
    allow_destroy: bool,
    parallelism: int,
    lock_timeout: float | None,
) -> int:
    """Make reality match the manifest (or apply a saved plan).

    \b
    Examples:
      dsdb apply
      dsdb apply plan.json
      dsdb apply --auto-approve --lock-timeout 300
    """
    saved = _read_plan_file(source)
    if saved is not None and (target or exclude):
        raise DsdbError("--target/--exclude cannot change a saved plan; plan again instead")
    manifest = Path(saved.manifest_path) if saved else source
    with (
        open_project(manifest, var, var_file) as project,
        Interrupts(out) as interrupts,
        contextlib.ExitStack() as locked,
    ):
        # A stop at once leaves through `locked.close`, so the next run finds the lock free.
        locked.enter_context(project.locked("apply", timeout=lock_timeout))
        the_plan = _plan(
            out,
            project,
            target,
            exclude,
            parallelism,
            saved=saved,
            release=locked.close,
            exit_code=lambda: interrupts.exit_code,
        )
        out.echo(render(the_plan, "text", color=out.use_color).rstrip("\n"))
        if not the_plan.has_changes:
            out.echo("Nothing to do.")
            return 0
        _get_consent(
            out,
            the_plan,
            saved=saved is not None,
            auto_approve=auto_approve,
            allow_destroy=allow_destroy,
        )
        # Loaded only to apply: rich would add ~50 ms to starting every other command.
        from dsdb_plan.cli.progress import ProgressReporter

        try:
            with ProgressReporter(out) as progress, interrupts.graceful() as stop:
                report = project.apply(
                    the_plan,
                    parallelism=parallelism,
                    progress=progress,
                    on_start=lambda action: out.echo(f"{action.key}: {action.type.value}..."),
                    on_result=lambda action, result: _show_result(out, action, result),
                    cancel=stop,
                )
        except KeyboardInterrupt:
            _interrupted(out, _RESUME_NOTE, code=interrupts.exit_code, release=locked.close)
        code = _show_report(out, report, moves=len(the_plan.moves))
        if report.interrupted:
            out.echo(f"\nInterrupted. {_RESUME_NOTE}", err=True)
            return interrupts.exit_code
    return code


_RESUME_NOTE = "Finished work is recorded; run `dsdb apply` again to resume."


def _plan(
    out: Output,
    project: Project,
    target: tuple[str, ...],
    exclude: tuple[str, ...],
    parallelism: int,
    *,
    saved: Plan | None = None,
    release: Callable[[], object] | None = None,
    exit_code: Callable[[], int] = lambda: 130,
) -> Plan:
    """The project's plan, or the `saved` one once it is found still true. Ctrl-C stops only
    the main thread, so it ends the process rather than wait for the reads that other
    threads are running (after calling `release`, which frees the state lock), with
    `exit_code()`: what the signal that stopped it calls for."""
    try:
        if saved is not None:
            project.ensure_fresh(saved, parallelism=parallelism)
            return saved
        return project.plan(targets=target, excludes=exclude, parallelism=parallelism)
    except KeyboardInterrupt:
        note = "Nothing was changed: planning only reads."
        _interrupted(out, note, code=exit_code(), release=release)


def _interrupted(
    out: Output, note: str, *, code: int = 130, release: Callable[[], object] | None = None
) -> NoReturn:
    """Stop now, without waiting for the work running in other threads (as after a kill),
    but first `release` the state lock, which a kill would leave behind."""
    if release is not None:
        # Stopping comes first: a lock left behind is taken over as stale by the next run.
        with contextlib.suppress(BaseException):
            release()
    out.echo(f"\nInterrupted. {note}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _get_consent(
    out: Output, the_plan: Plan, *, saved: bool, auto_approve: bool, allow_destroy: bool
) -> None:
    destructive = bool(the_plan.destructive)
    if (auto_approve or saved) and (not destructive or allow_destroy):
        return
    question = (
        "The plan deletes or overwrites data (see above). " if destructive else ""
    ) + "Apply it? Only 'yes' is accepted"
    answer = ask_yes(question)
    if answer is None:
        missing = (
            "--allow-destroy"
            if destructive and (auto_approve or saved)
            else "--auto-approve" + (" --allow-destroy" if destructive else "")
        )
        raise DsdbError(
            f"not applied: no answer to ask for consent; type or pipe 'yes', or pass {missing}"
        )
    if not answer:
        raise DsdbError("not applied: consent was not given")


def _show_result(out: Output, action: Action, result: ActionResult) -> None:
    if result.status == "ok":
        detail = f" ({counted(result.rows, 'row')})" if result.rows else ""
        out.echo(
            out.style(f"{action.key}: done", fg="green") + f"{detail} "
            f"in {result.duration_s:.1f}s" + (f" — {result.message}" if result.message else "")
        )
    elif result.status == "skipped":
        out.echo(out.style(f"{action.key}: {result.message}", fg="yellow"))
    else:
        color = "yellow" if result.status == "interrupted" else "red"
        out.echo(out.style(f"{action.key}: {result.status}: {result.message}", fg=color), err=True)


def _show_report(out: Output, report: ApplyReport, *, moves: int = 0) -> int:
    succeeded = sum(1 for r in report.results if r.status == "ok")
    line = (
        f"Apply {'complete' if report.ok else 'incomplete'}: {succeeded} succeeded, "
        f"{len(report.failed)} failed, {len(report.skipped)} skipped"
        + (f", {len(report.interrupted)} interrupted" if report.interrupted else "")
        + (f"; {counted(moves, 'rename')} recorded." if moves else ".")
    )
    out.echo("")
    out.echo(out.style(line, bold=True, fg=None if report.ok else "red"))
    for result in report.failed:
        out.echo(f"  {result.key}: {result.message}", err=True)
    return 0 if report.ok else 1
