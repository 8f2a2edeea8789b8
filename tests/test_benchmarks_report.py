"""The benchmark report's side-by-side tables (benchmarks/report.py), from made-up runs."""

from __future__ import annotations

from pathlib import Path

import yaml

from benchmarks import report
from benchmarks.measure import Measurement
from benchmarks.suite import COUNTS, DSDB, PathResult, Suite


def test_side_by_side_orders_by_time_and_says_why_a_contender_has_none() -> None:
    result = PathResult("sqlite-postgres", 1200)
    result.dsdb.append(Measurement(2.0, 90, 0, ""))
    result.runs["baseline"] = [Measurement(1.0, 40, 0, "")]
    result.runs["sling"] = [Measurement(0.5, 40, 1, "\x1b[31mpq: invalid byte\x1b[0m\n")]
    result.labels = {"baseline": "COPY", "sling": "Sling 1.4", "dlt": "dlt (not installed)"}
    result.notes = {"dlt": "skipped, not installed: run benchmarks/setup.sh"}
    result.landed = {"dsdb": "exact, keys, identity, verified", "baseline": "no identity (a|b)"}
    lines = report._side_by_side({"sqlite-postgres": result})
    assert lines[lines.index("### SQLite → PostgreSQL (migration)") + 4 :] == [
        "| COPY | 1.00 | 1,200 | 40 | 2.00 | no identity (a\\|b) |",
        "| **dsdb** | 2.00 | 600 | 90 | 1.00 | exact, keys, identity, verified |",
        "| Sling 1.4 | — | — | — | — | failed: pq: invalid byte |",
        "| dlt (not installed) | — | — | — | — | skipped, not installed: run benchmarks/setup.sh |",
    ]


def test_backup_aims_read_as_within_three_times() -> None:
    assert report._aim(PathResult("backup", 1)) == "≥ 1/3"
    assert report._aim(PathResult("sqlite-sqlite", 1)) == "≥ 0.80"


def test_verification_has_a_line_of_its_own_with_the_copy_alone_beside_the_baseline() -> None:
    result = PathResult("sqlite-sqlite", 1200)
    applied = (
        "migration.m: done — copied 1,200 rows into 2 tables, verified content; "
        "verifying took 1.5 s"
    )
    counted = "copied 1,200 rows into 2 tables, verified: row counts only; verifying took 0.1 s"
    result.dsdb = [Measurement(4.0, 90, 0, applied), Measurement(5.0, 90, 0, applied)]
    result.runs["baseline"] = [Measurement(2.0, 40, 0, "")]
    result.runs["dsdb+counts"] = [Measurement(2.6, 90, 0, counted)]
    result.labels = {"baseline": "ATTACH", "dsdb+counts": "dsdb, verify: counts"}
    lines = report._verification({"sqlite-sqlite": result})
    assert lines[-2:] == [
        "| SQLite → SQLite (migration) | **dsdb** | 4.00 | 1.50 | 2.50 | 2.00 | 0.80 |",
        "| SQLite → SQLite (migration) | dsdb, verify: counts | 2.60 | 0.10 | 2.50 | 2.00 | 0.80 |",
    ]
    assert report._verification({"sqlite-sqlite": PathResult("sqlite-sqlite", 1)}) == []


def test_rounds_pair_each_run_with_the_baseline_run_of_its_round_and_take_medians() -> None:
    result = PathResult("backup", 1200)
    result.runs["baseline"] = [Measurement(1.0, 40, 0, ""), Measurement(2.0, 40, 0, "")]
    result.dsdb = [Measurement(4.0, 90, 0, "", 3.0), Measurement(5.0, 95, 0, "", 4.0)]
    result.runs["dsdb_abc"] = [Measurement(2.0, 80, 1, "boom"), Measurement(4.0, 85, 0, "")]
    result.labels = {"baseline": "SQLite backup API", "dsdb_abc": "dsdb at abc"}
    assert result.round_ratios("dsdb") == [0.25, 0.4]
    assert result.round_ratios("dsdb_abc") == [None, 0.5]
    assert result.best_dsdb is result.dsdb[0]  # the median run: the lower of two
    lines = report._rounds({"backup": result}, ["3.0 / 2.0 / 1.0", "4.0 / 2.5 / 1.1"])
    loads = "Load average (1 / 5 / 15 min) as each round began: 3.0 / 2.0 / 1.0; 4.0 / 2.5 / 1.1"
    assert loads in lines
    assert lines[-3:] == [
        "| SQLite backup API | 1.00, 2.00 | 1.50 | 0.00 | 40 | — | — |",
        "| **dsdb** | 4.00, 5.00 | 4.50 | 3.50 | 95 | 0.25, 0.40 | 0.33 |",
        "| dsdb at abc | ✗, 4.00 | 4.00 | 0.00 | 85 | —, 0.50 | 0.50 |",
    ]


def test_the_counts_variant_runs_the_migrations_alone_at_verify_counts(tmp_path: Path) -> None:
    paths = ["sqlite-sqlite", "backup"]
    suite = Suite(10, paths, 1, True, (True, ""), print, counts=True)
    suite.source, suite.folder = tmp_path / "source.db", tmp_path
    counted = yaml.safe_load(suite._manifest(["sqlite-sqlite"], COUNTS))
    plain = yaml.safe_load(suite._manifest(["sqlite-sqlite"], DSDB))
    assert counted["migrations"]["sqlite-sqlite"]["verify"] == "counts"
    assert "verify" not in plain["migrations"]["sqlite-sqlite"]
    assert suite._builds_for("sqlite-sqlite") == [DSDB, COUNTS]
    assert suite._builds_for("backup") == [DSDB]
    assert suite._label(COUNTS) == "dsdb, verify: counts"
