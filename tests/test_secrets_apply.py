"""A password in a connection URL, or the value of a `sensitive: true` variable, never reaches
plan output, saved plans, state, history, backups or errors across a whole plan/apply cycle
(against a real PostgreSQL: trust authentication accepts any password, so a made-up one still
connects)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_flights_db, run_cli
from tests.servers import ServerDatabase

PASSWORD = "Sup3r-Secret-pw-7731"


@pytest.mark.postgres
@pytest.mark.parametrize("where", ["userinfo", "query"])
def test_password_appears_nowhere(
    capsys, tmp_path: Path, write_manifest, postgres_db: ServerDatabase, monkeypatch, where: str
) -> None:
    make_flights_db(tmp_path / "data/local.db")
    password = f"{PASSWORD}-{where}"  # secrets stay registered for the process: one each
    # libpq also takes the password as a query option: postgresql://user@host/db?password=...
    with_password = (
        postgres_db.url.set(password=password)
        if where == "userinfo"
        else postgres_db.url.update_query_dict({"password": password})
    )
    url = with_password.render_as_string(hide_password=False)
    monkeypatch.setenv("PROD_URL", url)
    manifest = write_manifest(
        "version: 1\nconnections:\n"
        "  local: {driver: sqlite, database: data/local.db}\n"
        "  prod: {url: '${env:PROD_URL}'}\n"
        "  copy: {driver: sqlite, database: data/copy.db}\n"
        "backups:\n  prod-nightly: {connection: prod, depends_on: [migration.push]}\n"
        "migrations:\n  push: {from: local, to: prod}\n"
        "restores:\n  back: {backup: prod-nightly, to: copy}\n"
    )
    outputs = [
        run_cli(capsys, "plan", manifest, "--format", fmt, "-o", tmp_path / f"plan-{fmt}.json")
        for fmt in ("text", "markdown", "json")
    ]
    outputs.append(run_cli(capsys, "apply", manifest, "--auto-approve", "--allow-destroy"))
    outputs += [
        run_cli(capsys, "state", "pull", manifest),
        run_cli(capsys, "history", "-m", manifest, "--format", "json"),
        run_cli(capsys, "verify", manifest),
        run_cli(capsys, "connections", manifest),
    ]
    monkeypatch.setenv("PROD_URL", url.replace("127.0.0.1", "127.0.0.1:1"))
    outputs.append(run_cli(capsys, "plan", manifest))  # unreachable: an error message
    assert [result.code for result in outputs[:8]] == [0] * 8, [r.text for r in outputs]
    assert outputs[-1].code == 1
    for result in outputs:
        assert password not in result.text
    for file in tmp_path.rglob("*"):
        if file.is_file():
            assert password.encode() not in file.read_bytes(), file


SENSITIVE = "ZZ-hidden-carrier-5190"


def test_a_sensitive_variable_appears_nowhere(capsys, tmp_path: Path, write_manifest) -> None:
    # Not a password field (those are secret anyway): a filter value only `sensitive` hides.
    make_flights_db(tmp_path / "data/local.db")
    manifest = write_manifest(
        "version: 1\n"
        "variables:\n  excluded: {sensitive: true}\n"
        "connections:\n"
        "  local: {driver: sqlite, database: data/local.db}\n"
        "  prod: {driver: sqlite, database: data/prod.db}\n"
        "migrations:\n  push:\n    from: local\n    to: prod\n"
        "    tables: {flights: {where: {carrier: {ne: '${var:excluded}'}}}}\n"
    )
    given = ("--var", f"excluded={SENSITIVE}")
    outputs = [
        run_cli(capsys, "plan", manifest, *given, "--format", fmt, "-o", tmp_path / f"{fmt}.json")
        for fmt in ("text", "markdown", "json")
    ]
    outputs += [
        run_cli(capsys, "apply", manifest, *given, "--auto-approve"),
        run_cli(capsys, "state", "show", "migration.push", manifest, *given),
        run_cli(capsys, "state", "pull", manifest, *given),
        run_cli(capsys, "history", "-m", manifest, *given, "--format", "json"),
        run_cli(capsys, "verify", manifest, *given),
        run_cli(capsys, "plan", manifest, *given, "--detailed-exitcode"),
    ]
    assert [result.code for result in outputs] == [0] * 9, [r.text for r in outputs]
    assert "200 of 200 rows" in outputs[3].err, "the filter is applied: every flight passes"
    for result in outputs:
        assert SENSITIVE not in result.text
    for file in tmp_path.rglob("*"):
        if file.is_file():
            assert SENSITIVE.encode() not in file.read_bytes(), file
