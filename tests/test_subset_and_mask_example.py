"""examples/subset-and-mask, run as a user would: seed, plan, apply, apply again."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dsdb_plan.migrate.sample import HASH_RANGE
from dsdb_plan.sqlfunctions import stable_hash
from tests.helpers import run_cli

EXAMPLE = Path(__file__).parent.parent / "examples" / "subset-and-mask"


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute(sql).fetchall())


def test_the_example_pulls_a_masked_sample_that_joins(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "example"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("data", ".dsdb"))
    subprocess.run([sys.executable, "seed.py"], cwd=work, check=True, capture_output=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("DSDB_MASK_SEED", "a secret of the test")

    plan = run_cli(capsys, "plan", "--no-color", "--detailed-exitcode")
    assert plan.code == 2, plan.text
    assert "masks id (hash), email (fake_email)" in plan.out
    applied = run_cli(capsys, "apply", "--auto-approve")
    assert applied.code == 0, applied.text

    production, local = work / "data/production.db", work / "data/local.db"
    lines = rows(production, "SELECT order_id, line FROM order_items")
    sampled = [k for k in lines if (stable_hash(f"1|{k[0]}|{k[1]}") or 0) < HASH_RANGE // 10]
    assert rows(local, "SELECT order_id, line FROM order_items") == sampled
    # Every copied order has its customer (masked ids join) and its items' products.
    orders = rows(local, "SELECT id FROM orders")
    assert orders == sorted({(order,) for order, _ in sampled})
    joined = rows(local, "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id")
    assert joined == orders
    dangling = "SELECT count(*) FROM order_items i LEFT JOIN products p ON p.sku = i.sku"
    assert rows(local, dangling + " WHERE p.sku IS NULL") == [(0,)]
    # Nothing personal left production.
    personal = rows(production, "SELECT email, name, phone, ssn FROM customers")
    copied = (work / "data/local.db").read_bytes().decode("latin-1")
    assert not [value for person in personal for value in person if value in copied]

    again = run_cli(capsys, "plan", "--detailed-exitcode")
    assert again.code == 0, again.text
