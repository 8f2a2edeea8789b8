"""Run one command in a child process: wall time end to end and the child's peak RSS."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_rss_mb: float
    returncode: int
    output: str  # stdout and stderr, for the report when the command failed

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def last_line(self) -> str:
        lines = [line for line in self.output.splitlines() if line.strip()]
        return lines[-1].strip() if lines else f"exit {self.returncode}"


def measure(
    command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> Measurement:
    """Run `command`; `os.wait4` gives the child's own peak RSS (ru_maxrss, KiB on Linux)."""
    with tempfile.TemporaryFile(mode="w+") as output:
        started = time.perf_counter()
        child = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, "NO_COLOR": "1", **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read()
    return Measurement(seconds, usage.ru_maxrss / 1024, child.returncode, text)
