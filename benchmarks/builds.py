"""dsdb as committed at earlier revisions, each installed in a temporary git worktree and
virtual environment of its own, to time beside this checkout (`run.py --against`).

Each revision is installed with its own dependencies as its `pyproject.toml` names them, not
imported past this checkout's, so what is timed is what a user of that revision ran. Both
are removed when the run ends.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def key(revision: str) -> str:
    """The name a revision's dsdb is reported under (and names its targets by)."""
    return f"dsdb_{revision[:12]}"


@contextmanager
def installed(
    revisions: list[str], log: Callable[[str], None] = print
) -> Iterator[dict[str, list[str]]]:
    """The `dsdb` command of each revision, by `key`, installed for the block's duration."""
    if not revisions:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="dsdb-bench-against-") as folder:
        commands: dict[str, list[str]] = {}
        trees: list[Path] = []
        try:
            for revision in revisions:
                commit = _git("rev-parse", "--verify", f"{revision}^{{commit}}")
                tree, venv = Path(folder) / commit, Path(folder) / f"{commit}-venv"
                _git("worktree", "add", "--detach", str(tree), commit)
                trees.append(tree)
                log(f"installing dsdb at {revision} ({commit[:12]}) in {venv}")
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
                subprocess.run(
                    [str(venv / "bin" / "pip"), "install", "-q", str(tree)],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                commands[key(revision)] = [str(venv / "bin" / "dsdb")]
            yield commands
        finally:
            for tree in trees:
                _git("worktree", "remove", "--force", str(tree))


def _git(*arguments: str) -> str:
    run = subprocess.run(["git", *arguments], cwd=REPO, capture_output=True, text=True, check=True)
    return run.stdout.strip()
