"""A saved plan applied after the data it relied on moved: refused, naming each change once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.helpers import make_flights_db, run_cli

MANIFEST = """\
version: 1
connections:
  local: {driver: sqlite, database: data/local.db}
  copy: {driver: sqlite, database: data/copy.db}
backups:
  nightly: {connection: local}
migrations:
  out: {from: local, to: copy}
"""


def test_a_change_that_two_resources_read_is_named_once(capsys, write_manifest) -> None:
    manifest = write_manifest(MANIFEST)
    make_flights_db(manifest.parent / "data/local.db", flights=50)
    plan_file = manifest.parent / "plan.json"
    assert run_cli(capsys, "plan", manifest, "-o", plan_file).code == 0
    with sqlite3.connect(manifest.parent / "data/local.db") as db:
        db.execute("UPDATE airlines SET name = 'United Airlines' WHERE carrier = 'UA'")

    result = run_cli(capsys, "apply", plan_file)

    assert result.code == 1
    assert result.err.splitlines()[1:] == [
        "  - data in local changed: table airlines: content changed, still 3 rows",
        "Run `dsdb plan` again.",
    ]
    assert not Path(manifest.parent / "data/copy.db").exists()
