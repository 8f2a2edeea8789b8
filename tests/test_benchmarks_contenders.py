"""The benchmark's contenders (benchmarks/contenders.py): what each is asked to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import contenders
from benchmarks.contenders import CONTENDERS, Contender, Sources
from benchmarks.suite import PATHS, PLANS, select


@pytest.fixture
def sources(tmp_path: Path) -> Sources:
    return Sources("/data/source.db", "dsdb_bench_x_pg_source", tmp_path)


def _peer(path: str, peer: str) -> Contender:
    return next(c for c in CONTENDERS[path] if c.peer == peer)


def test_every_measured_path_has_a_baseline_first_and_an_aim() -> None:
    measured = [path for path in PATHS if path not in PLANS]
    assert sorted(CONTENDERS) == sorted(measured) == sorted(contenders.AIMS)
    assert all(CONTENDERS[path][0].key == "baseline" for path in measured)


def test_pgloader_copies_only_the_benchmark_tables(sources: Sources) -> None:
    command, env = contenders.command(
        _peer("sqlite-postgres", "pgloader"), "sqlite-postgres", sources, "dsdb_bench_x_t"
    )
    assert command[0] == "pgloader" and env == {}
    load = Path(command[-1]).read_text()
    assert "FROM sqlite:///data/source.db" in load
    assert "INTO postgresql://postgres@127.0.0.1:5432/dsdb_bench_x_t" in load
    assert "INCLUDING ONLY TABLE NAMES LIKE 'parent', 'child';" in load


def test_sling_replicates_both_tables_with_the_binary_cast(
    sources: Sources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contenders, "sling_binary", lambda: "sling")
    command, env = contenders.command(
        _peer("postgres-mariadb", "sling"), "postgres-mariadb", sources, "dsdb_bench_x_m"
    )
    replication = json.loads(Path(command[-1]).read_text())
    assert replication["streams"] == {"public.parent": None, "public.child": None}
    assert replication["defaults"] == {
        "mode": "full-refresh",
        "object": "dsdb_bench_x_m.{stream_table}",
        "columns": {"payload": "binary"},
    }
    assert env["BENCH_SOURCE"] == (
        "postgresql://postgres@127.0.0.1:5432/dsdb_bench_x_pg_source?sslmode=disable"
    )
    assert env["BENCH_TARGET"] == "mysql://root@127.0.0.1:3306/dsdb_bench_x_m"
    assert env["SLING_DISABLE_TELEMETRY"] == "true"


def test_dlt_gets_the_password_it_insists_on_and_no_telemetry(sources: Sources) -> None:
    command, env = contenders.command(
        _peer("sqlite-postgres", "dlt"), "sqlite-postgres", sources, "dsdb_bench_x_t"
    )
    args = json.loads(command[-1])
    assert args["target"] == "postgresql://postgres:unused@127.0.0.1:5432/dsdb_bench_x_t"
    assert args["source_url"] == "sqlite:////data/source.db"
    assert env == {"RUNTIME__DLTHUB_TELEMETRY": "false"}


def test_pg_restore_loads_the_file_pg_dump_wrote(sources: Sources) -> None:
    dump, _ = contenders.command(CONTENDERS["backup-postgres"][0], "backup-postgres", sources, "")
    restore = next(c for c in CONTENDERS["restore"] if c.key == "pg_restore")
    load, _ = contenders.command(restore, "restore", sources, "dsdb_bench_x_r")
    assert dump[:2] == ["pg_dump", "-Fc"] and load[0] == "pg_restore"
    assert dump[3] == load[-1] == str(sources.folder / contenders.PG_DUMP)


def test_the_restore_path_brings_both_backups_it_loads() -> None:
    assert select(["restore"]) == ["backup", "backup-postgres", "restore"]
    assert select(["sqlite-sqlite", "plan-change"]) == ["sqlite-sqlite", "plan", "plan-change"]
    assert select(["plan-change"]) == list(PATHS)
