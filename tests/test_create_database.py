"""A target database that does not exist: the error says how to create it, and
`create_database: true` makes apply create it, as the plan says (PostgreSQL, MariaDB)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import make_flights_db, run_cli, table_rows
from tests.servers import ServerDatabase


@pytest.fixture(
    params=[
        pytest.param("postgres_db", marks=pytest.mark.postgres),
        pytest.param("mariadb_db", marks=pytest.mark.mariadb),
    ]
)
def absent(request: pytest.FixtureRequest) -> Iterator[ServerDatabase]:
    """A database on the test server that does not exist (and is dropped afterwards)."""
    server: ServerDatabase = request.getfixturevalue(request.param)
    database = dataclasses.replace(server, name=f"{server.name}_created")
    database.drop()
    yield database
    database.drop()


def manifest_text(database: ServerDatabase, create: bool) -> str:
    return (
        "version: 1\n"
        "connections:\n"
        "  local: {driver: sqlite, database: data/local.db}\n"
        f"  fresh: {{url: '{database.url_string}', create_database: {str(create).lower()}}}\n"
        "migrations:\n"
        "  all-flights: {from: local, to: fresh, tables: [flights], follow: parents}\n"
    )


def test_a_missing_database_says_how_to_create_it(
    capsys, tmp_path: Path, write_manifest, absent: ServerDatabase
) -> None:  # type: ignore[no-untyped-def]
    make_flights_db(tmp_path / "data/local.db")
    manifest = write_manifest(manifest_text(absent, create=False))

    planned = run_cli(capsys, "plan", manifest)

    assert planned.code == 1
    assert "cannot reach connection 'fresh'" in planned.err
    assert planned.err.rstrip().endswith(
        f"; create it (CREATE DATABASE {absent.name}), or set `create_database: true` on "
        "connection 'fresh' and apply creates it"
    ), planned.err


def test_create_database_is_planned_then_done_by_apply(
    capsys, tmp_path: Path, write_manifest, absent: ServerDatabase
) -> None:  # type: ignore[no-untyped-def]
    make_flights_db(tmp_path / "data/local.db")
    manifest = write_manifest(manifest_text(absent, create=True))

    planned = run_cli(capsys, "plan", manifest)
    assert planned.code == 0, planned.text
    assert (
        f"Warning: database {absent.name} of connection 'fresh' does not exist: apply creates it "
        "(create_database: true)" in planned.out
    )
    assert "+ migration.all-flights (create)" in planned.out
    replanned = run_cli(capsys, "plan", manifest)
    assert "does not exist: apply creates it" in replanned.out, "a plan creates nothing"

    applied = run_cli(capsys, "apply", manifest, "--auto-approve")
    assert applied.code == 0, applied.text
    assert table_rows(absent.url, "flights") == table_rows(
        f"sqlite:///{tmp_path / 'data/local.db'}", "flights"
    )
    again = run_cli(capsys, "plan", manifest, "--detailed-exitcode")
    assert again.code == 0, again.text
    assert "does not exist" not in again.out


@pytest.mark.postgres
def test_a_database_apply_will_create_is_not_said_to_need_create_database(
    capsys, tmp_path: Path, write_manifest, absent: ServerDatabase
) -> None:  # type: ignore[no-untyped-def]
    make_flights_db(tmp_path / "data/local.db")
    manifest = write_manifest(manifest_text(absent, create=True))

    verified = run_cli(capsys, "verify", manifest)

    assert verified.code == 1
    assert verified.err.rstrip().endswith(
        "; the next apply creates it (create_database: true on connection 'fresh')"
    ), verified.err


def test_a_login_role_that_does_not_exist_is_not_taken_for_a_missing_database(
    capsys, tmp_path: Path, write_manifest, postgres_db: ServerDatabase
) -> None:  # type: ignore[no-untyped-def]
    make_flights_db(tmp_path / "data/local.db")
    stranger = dataclasses.replace(
        postgres_db, admin_url=postgres_db.admin_url.set(username="dsdb_no_such_role")
    )
    manifest = write_manifest(manifest_text(stranger, create=False))

    planned = run_cli(capsys, "plan", manifest)

    assert planned.code == 1
    assert 'role "dsdb_no_such_role" does not exist' in planned.err
    assert "CREATE DATABASE" not in planned.err
    assert "create_database" not in planned.err
