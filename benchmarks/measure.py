"""Run one command in a child process: wall time end to end and the child's peak RSS.

The command is started by a small helper process (this file run as a script), not by the
harness itself: Linux counts the memory of the process a child was forked from in the
child's peak RSS, so children of the harness (which holds the drivers and dsdb's modules)
would never report less than the harness. The helper is a fresh interpreter of about 10 MB.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
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
    #: User plus system CPU time of the command: steadier than wall time on a busy machine.
    cpu_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def verifying_seconds(self) -> float | None:
        """How long a dsdb apply says verifying took beyond copying, where it says so."""
        found = re.search(r"verifying took ([0-9.]+) s", self.output)
        return float(found.group(1)) if found else None

    @property
    def action_seconds(self) -> float | None:
        """How long the applied action took, as its apply says (`done (…) in 9.9s`)."""
        found = re.search(r": done \([^)]*\) in ([0-9.]+)s", self.output)
        return float(found.group(1)) if found else None

    def last_line(self) -> str:
        """The last line printed, without terminal colours (Sling colours its errors)."""
        plain = re.sub(r"\x1b\[[0-9;]*m", "", self.output)
        lines = [line for line in plain.splitlines() if line.strip()]
        return lines[-1].strip() if lines else f"exit {self.returncode}"


def measure(
    command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> Measurement:
    """Run `command` through the helper; its wall time and peak RSS (ru_maxrss)."""
    with tempfile.NamedTemporaryFile(mode="w+") as output:
        helper = subprocess.run(
            [sys.executable, __file__, output.name, *command],
            cwd=cwd,
            env={**os.environ, "NO_COLOR": "1", **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=True,
        )
        output.seek(0)
        text = output.read()
    result = json.loads(helper.stdout)
    return Measurement(
        result["seconds"],
        result["maxrss_kib"] / 1024,
        result["returncode"],
        text,
        result["cpu_seconds"],
    )


def _helper(output: str, command: list[str]) -> None:
    with open(output, "w") as sink:
        started = time.perf_counter()
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
    result = {
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "maxrss_kib": usage.ru_maxrss,
        "returncode": child.returncode,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    _helper(sys.argv[1], sys.argv[2:])
