"""The README's test command is the one CI runs."""

from __future__ import annotations

import re
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
