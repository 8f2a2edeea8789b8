"""dsdb's side: the manifest under test, the commands that are timed, and profiling them."""

from __future__ import annotations

import pstats
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import yaml

from benchmarks.measure import Measurement, measure

REPO = str(Path(__file__).resolve().parents[1]) + "/"
DSDB = str(Path(sys.executable).with_name("dsdb"))
MANIFEST = "dsdb.yaml"
Hotspot = tuple[str, float]


def build_manifest(
    connections: dict[str, dict[str, str]],
    backups: dict[str, dict[str, object]],
    restores: dict[str, dict[str, object]],
    migrations: dict[str, dict[str, object]],
) -> str:
    document: dict[str, object] = {
        "version": 1,
        "settings": {"state": ".dsdb/state.db", "backup_root": "backups/"},
        "connections": connections,
    }
    for section, resources in (
        ("backups", backups),
        ("migrations", migrations),
        ("restores", restores),
    ):
        if resources:
            document[section] = resources
    return yaml.safe_dump(document, sort_keys=False)


def apply(workdir: Path, address: str) -> Measurement:
    return measure([DSDB, "apply", "--auto-approve", "--target", address, MANIFEST], cwd=workdir)


def plan(workdir: Path) -> Measurement:
    """`dsdb plan --detailed-exitcode`: exit 0 means nothing to change."""
    return measure([DSDB, "plan", "--detailed-exitcode", MANIFEST], cwd=workdir)


def forget(workdir: Path, address: str) -> None:
    subprocess.run(
        [DSDB, "state", "rm", address, MANIFEST], cwd=workdir, check=True, capture_output=True
    )


def migrations_available() -> tuple[bool, str]:
    """Whether this dsdb plans a `migrations:` resource, with the reason when it does not."""
    with tempfile.TemporaryDirectory(prefix="dsdb-bench-probe-") as folder:
        workdir = Path(folder)
        conn = sqlite3.connect(workdir / "a.db")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO t VALUES (1, 'x')")
        conn.commit()
        conn.close()
        connections = {
            "a": {"driver": "sqlite", "database": "a.db"},
            "b": {"driver": "sqlite", "database": "b.db"},
        }
        migration = {"from": "a", "to": "b", "mode": "upsert", "tables": ["t"]}
        (workdir / MANIFEST).write_text(build_manifest(connections, {}, {}, {"m": migration}))
        result = plan(workdir)
    if result.returncode in (0, 2):
        return True, ""
    return False, result.last_line()


def profile(workdir: Path, arguments: list[str], top: int = 8) -> dict[str, list[Hotspot]]:
    """Run dsdb under cProfile: the `top` functions by own time, and dsdb's own functions by
    cumulative time, each with its share of the whole run."""
    with tempfile.NamedTemporaryFile(suffix=".prof") as output:
        command = [sys.executable, "-m", "cProfile", "-o", output.name, DSDB, *arguments]
        subprocess.run(command, cwd=workdir, check=False, capture_output=True)
        entries = pstats.Stats(output.name).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in entries.values()) or 1.0
    own = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:top]
    ours = sorted(
        (
            item
            for item in entries.items()
            if "dsdb_plan" in item[0][0] and item[0][2] != "<module>"
        ),
        key=lambda item: item[1][3],
        reverse=True,
    )
    return {
        "own time": [(_where(key), stat[2] / total) for key, stat in own],
        "dsdb_plan, cumulative": [(_where(key), stat[3] / total) for key, stat in ours[:top]],
    }


_PREFIXES = sorted(
    {sysconfig.get_paths()["purelib"] + "/", sysconfig.get_paths()["stdlib"] + "/", REPO},
    key=len,
    reverse=True,
)


def _where(key: tuple[str, int, str]) -> str:
    file, line, function = key
    if file == "~":
        return function  # a built-in, e.g. {method 'execute' of 'sqlite3.Cursor' objects}
    for prefix in _PREFIXES:
        if file.startswith(prefix):
            file = file[len(prefix) :]
            break
    return f"{file}:{line}:{function}"
