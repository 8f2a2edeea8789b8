"""The README's quickstart, run as a new user would: seed, plan, apply, apply again."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_cli, sqlite_url, table_rows

QUICKSTART = Path(__file__).parent.parent / "examples" / "quickstart"


def test_quickstart_plans_applies_and_then_has_nothing_to_do(
    capsys, tmp_path: Path, monkeypatch
) -> None:
    work = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, work, ignore=shutil.ignore_patterns("data", "backups", ".dsdb"))
    subprocess.run([sys.executable, "seed.py"], cwd=work, check=True, capture_output=True)
    monkeypatch.chdir(work)

    plan = run_cli(capsys, "plan", "--detailed-exitcode")
    assert plan.code == 2, plan.text
    assert "+ backup.local-nightly (create)" in plan.out
    assert "+ restore.nightly-into-scratch (create)" in plan.out
    assert "+ migration.ua-winter-to-staging (create)" in plan.out
    assert "airports → staging.airports" in plan.out

    applied = run_cli(capsys, "apply", "--auto-approve")
    assert applied.code == 0, applied.text
    # Without a terminal, progress is plain lines per table, ending with the table's total.
    assert "migration.ua-winter-to-staging flights: 206 of 206 rows" in applied.err
    assert "\x1b" not in applied.text and "\r" not in applied.text
    for table in ("airlines", "airports", "flights"):
        assert table_rows(sqlite_url(work / "data/scratch.db"), table) == table_rows(
            sqlite_url(work / "data/flights.db"), table
        )

    winter_ua = table_rows(sqlite_url(work / "data/flights.db"), "flights")
    winter_ua = [row for row in winter_ua if row[3] == "UA" and row[1] in (1, 2)]
    assert table_rows(sqlite_url(work / "data/staging.db"), "flights") == winter_ua

    subprocess.run([sys.executable, "seed.py"], cwd=work, check=True, capture_output=True)
    again = run_cli(capsys, "apply", "--auto-approve")
    assert again.code == 0, again.text
    assert "Nothing to do." in again.out


GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize(
    ("fmt", "golden"), [("text", "quickstart-plan.txt"), ("markdown", "quickstart-plan.md")]
)
def test_quickstart_first_plan_matches_golden_file(
    capsys, tmp_path: Path, monkeypatch, fmt: str, golden: str
) -> None:
    work = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, work, ignore=shutil.ignore_patterns("data", "backups", ".dsdb"))
    subprocess.run([sys.executable, "seed.py"], cwd=work, check=True, capture_output=True)
    monkeypatch.chdir(work)
    # The digest covers resolved paths, which differ per checkout.
    rendered = re.sub(
        r"digest `[0-9a-f]+`", "digest `<digest>`", run_cli(capsys, "plan", "--format", fmt).out
    )
    expected = GOLDEN / golden
    if not expected.exists():
        expected.write_text(rendered)
        pytest.fail(f"wrote {expected}; review it and run again")
    assert rendered == expected.read_text()
