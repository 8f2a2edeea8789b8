"""What a migration's plan says about each table it copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_flights_db, run_cli

WIDENED = """\
version: 1
connections:
  local: {driver: sqlite, database: data/local.db}
  copy: {driver: sqlite, database: data/copy.db}
migrations:
  out:
    from: local
    to: copy
    follow: parents
    tables:
      airlines: {where: {carrier: UA}}
      flights: {}
"""


def test_the_plan_says_when_follow_widens_a_filtered_table(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    make_flights_db(tmp_path / "data/local.db")
    plan = run_cli(capsys, "plan", write_manifest(WIDENED))
    assert plan.code == 0, plan.text
    assert (
        "airlines → copy.airlines: 3 rows (upsert, new table; parent of flights via "
        "flights.carrier); its filter selects 1 row, follow: parents adds 2"
    ) in plan.out
    assert "flights → copy.flights: 200 rows (upsert, new table)\n" in plan.out


def test_a_filter_that_follow_does_not_widen_gets_no_note(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    make_flights_db(tmp_path / "data/local.db")
    manifest = write_manifest(WIDENED.replace("      flights: {}\n", ""))
    plan = run_cli(capsys, "plan", manifest)
    assert plan.code == 0, plan.text
    assert "airlines → copy.airlines: 1 row (upsert, new table)\n" in plan.out
    assert "follow" not in plan.out.split("Plan:")[0].split("airlines →")[1]
