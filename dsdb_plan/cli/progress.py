"""Progress of long work: a live display on terminals, a quiet line every few seconds in logs."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from dsdb_plan.cli.output import Output

LOG_INTERVAL_SECONDS = 5.0


class _RowsColumn(ProgressColumn):
    """`2,500/5,000`: rows done of the total, with thousands separators."""

    def render(self, task: Task) -> Text:
        done = f"{int(task.completed):,}"
        return Text(done if task.total is None else f"{done}/{int(task.total):,}")


class _RateColumn(ProgressColumn):
    """Rows per second: rich's recent estimate, else the average so far (rich needs two
    updates within its window, and a slow table reports one batch at a time)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.elapsed and task.completed:
            speed = task.completed / task.elapsed
        return Text(f"{speed:,.0f} rows/s" if speed else "")


def progress_columns() -> tuple[ProgressColumn, ...]:
    """What the live display shows of each table: label, bar, rows, rows/s, elapsed, ETA."""
    return (
        TextColumn("{task.description}"),
        BarColumn(),
        _RowsColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


class ProgressReporter:
    """Callable as progress(label, rows_done, rows_total_or_None); use as a context manager."""

    def __init__(self, out: Output, *, interactive: bool | None = None) -> None:
        self.out = out
        if interactive is None:  # plain output asked for gets log lines, not drawn bars
            interactive = sys.stderr.isatty() and not out.plain
        self.interactive = interactive
        self._display: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._last_logged: dict[str, float] = {}

    def __enter__(self) -> ProgressReporter:
        if self.interactive:
            self._display = Progress(
                *progress_columns(), console=Console(stderr=True), transient=True
            )
            self._display.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._display is not None:
            self._display.stop()

    def __call__(self, label: str, rows: int, total: int | None) -> None:
        if self._display is not None:
            if label not in self._tasks:
                self._tasks[label] = self._display.add_task(label, total=total)
            self._display.update(self._tasks[label], completed=rows, total=total)
            return
        now = time.monotonic()
        first = label not in self._last_logged
        finished = total is not None and rows >= total
        if first or finished or now - self._last_logged[label] >= LOG_INTERVAL_SECONDS:
            self._last_logged[label] = now
            of_total = f" of {total:,}" if total else ""
            self.out.echo(f"  {label}: {rows:,}{of_total} rows", err=True)
