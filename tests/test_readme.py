"""The README's two commands: the quickstart runs as written, and CI runs the test command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _try_it_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Try it\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```bash\n(.*?)\n```$", section, re.M | re.S)


def test_readme_has_two_commands() -> None:
    commands = _try_it_commands()

    assert len(commands) == 2
    assert all("\n" not in command for command in commands)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = _try_it_commands()[1]

    assert "pytest" in test_command
    assert test_command in (REPO / ".ci" / "run").read_text().splitlines()


def test_the_quickstart_command_runs_as_written(tmp_path: Path) -> None:
    # Everything after the install, in a fresh copy of the quickstart folder.
    install, _, steps = _try_it_commands()[0].partition(" && cd examples/quickstart && ")
    assert "pip install" in install and steps, "the command installs, then runs the quickstart"
    work = tmp_path / "quickstart"
    shutil.copytree(
        REPO / "examples" / "quickstart",
        work,
        ignore=shutil.ignore_patterns("data", "backups", ".dsdb"),
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", steps], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Plan: 3 to create." in result.stdout
    assert "Apply complete" in result.stdout
