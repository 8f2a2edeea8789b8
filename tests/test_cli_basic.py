"""`dsdb --version`, `validate`, `schema` and `connections`, through the CLI entry point."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest

import dsdb_plan
from dsdb_plan.cli import cli
from dsdb_plan.schema import manifest_schema_text
from tests.helpers import make_flights_db, run_cli
from tests.servers import ServerDatabase

REPO = Path(__file__).resolve().parent.parent
SCHEMA_FILE = REPO / "schemas" / "manifest.schema.json"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "--version")

    assert result.code == 0
    assert result.out == f"dsdb {dsdb_plan.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", dsdb_plan.__version__)


def test_validate_reads_dsdb_yaml_in_the_current_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dsdb.yaml").write_text(
        "version: 1\n"
        "connections:\n"
        "  local: {driver: sqlite, database: data/local.db}\n"
        "backups:\n"
        "  nightly: {connection: local}\n"
    )
    monkeypatch.chdir(tmp_path)

    result = run_cli(capsys, "validate")

    assert result.code == 0
    assert result.out == "✓ dsdb.yaml is valid (1 connection, 1 resource).\n"


def test_validate_without_a_manifest_says_which_file_it_looked_for(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = run_cli(capsys, "validate")

    assert result.code == 1
    assert result.err == "Error: manifest not found: dsdb.yaml\n"


def test_checked_in_schema_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "schema")

    assert result.code == 0
    assert result.out == SCHEMA_FILE.read_text(), (
        "schemas/manifest.schema.json is out of date with the models; regenerate it with "
        "`dsdb schema > schemas/manifest.schema.json`"
    )


def _server_manifest(postgres: ServerDatabase, mariadb: ServerDatabase) -> str:
    pg, maria = postgres.url, mariadb.url
    return (
        "version: 1\n"
        "connections:\n"
        f"  pg: {{driver: postgresql, host: '{pg.host}', port: {pg.port or 5432},"
        f" database: {pg.database}, user: {pg.username}, password: '${{env:DSDB_TEST_PG_PW}}'}}\n"
        f"  maria: {{driver: mariadb, host: '{maria.host}', port: {maria.port or 3306},"
        f" database: {maria.database}, user: {maria.username},"
        " password: '${env:DSDB_TEST_MARIA_PW}'}\n"
    )


@pytest.mark.postgres
@pytest.mark.mariadb
def test_connections_reaches_the_real_servers(
    postgres_db: ServerDatabase,
    mariadb_db: ServerDatabase,
    write_manifest,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DSDB_TEST_PG_PW", postgres_db.url.password or "")
    monkeypatch.setenv("DSDB_TEST_MARIA_PW", mariadb_db.url.password or "")
    path = write_manifest(_server_manifest(postgres_db, mariadb_db))

    result = run_cli(capsys, "connections", path)

    assert result.code == 0, result.text
    assert re.search(
        r"^✓ pg +postgresql +PostgreSQL \d+\.\d+, [\d.]+ ms round trip$", result.out, re.M
    ), result.out
    assert re.search(
        r"^✓ maria +mariadb +MariaDB \d+\.\d+\.\d+, [\d.]+ ms round trip$", result.out, re.M
    ), result.out


@pytest.mark.parametrize(
    ("driver", "cause"),
    [("postgresql", "Connection refused"), ("mariadb", "Connection refused")],
)
def test_connections_reports_a_closed_port(
    driver: str,
    cause: str,
    write_manifest,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_manifest(
        "version: 1\n"
        "connections:\n"
        f"  closed: {{driver: {driver}, host: 127.0.0.1, port: 1, database: flights}}\n"
        "  local: {driver: sqlite, database: local.db}\n"
    )

    result = run_cli(capsys, "connections", path)

    assert result.code == 1
    assert "Traceback" not in result.text
    line = next(line for line in result.out.splitlines() if line.startswith("✗ closed"))
    assert f"cannot connect to {driver} at 127.0.0.1:1/flights: " in line
    assert cause in line
    assert re.search(r"^✓ local +sqlite +SQLite ", result.out, re.M)
    assert result.err == "1 of 2 connections unreachable: closed\n"


def test_connections_of_a_broken_manifest_is_a_manifest_error(
    write_manifest,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    path = write_manifest("version: 1\nconnections:\n  a: {driver: postgress, database: x}\n")

    result = run_cli(capsys, "connections", path)

    assert result.code == 1
    assert f"{path}:3:" in result.err
    assert "did you mean 'postgresql'" in result.err


@pytest.mark.mariadb
def test_connections_names_mariadb_reached_through_a_mysql_url(
    mariadb_db: ServerDatabase,
    write_manifest,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DSDB_TEST_MARIA_URL", mariadb_db.url_string)
    path = write_manifest(
        "version: 1\nconnections:\n  maria: {url: '${env:DSDB_TEST_MARIA_URL}'}\n"
    )

    result = run_cli(capsys, "connections", path)

    assert result.code == 0, result.text
    assert re.search(r"^✓ maria +mysql +MariaDB \d+\.\d+\.\d+, ", result.out, re.M), result.out


def test_init_writes_a_manifest_that_plans(capsys, tmp_path: Path) -> None:
    result = run_cli(capsys, "init", tmp_path)
    assert result.code == 0, result.text
    manifest = tmp_path / "dsdb.yaml"
    assert manifest.read_text().startswith("# yaml-language-server: $schema=dsdb.schema.json")
    assert (tmp_path / "dsdb.schema.json").read_text() == manifest_schema_text()
    assert run_cli(capsys, "validate", manifest).code == 0
    plan = run_cli(capsys, "plan", manifest, "--detailed-exitcode")
    assert plan.code == 0 and "No changes." in plan.out
    backup = manifest.read_text().replace(
        "# backups:\n#   local-nightly", "backups:\n  local-nightly"
    )
    manifest.write_text(backup)
    missing = run_cli(capsys, "plan", manifest)
    assert missing.code == 1
    assert "database local" in missing.err and "does not exist: nothing to back up" in missing.err
    again = run_cli(capsys, "init", tmp_path)
    assert again.code == 1 and "already exists" in again.err


def test_usage_errors_exit_1_not_the_changes_code(capsys, tmp_path: Path) -> None:
    result = run_cli(capsys, "plan", "--detailed-exitcode", "--targt", "x")
    assert result.code == 1
    assert "No such option" in result.err


def test_no_color_accepts_any_value(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "yes please")
    manifest = tmp_path / "dsdb.yaml"
    manifest.write_text("version: 1\n")
    result = run_cli(capsys, "validate", manifest)
    assert result.code == 0 and "\x1b[" not in result.out


@pytest.mark.parametrize(
    "args",
    [
        ("--no-color", "validate", "{manifest}"),
        ("validate", "--no-color", "{manifest}"),
        ("validate", "{manifest}", "--no-color", "--debug"),
        ("--debug", "state", "list", "--no-color", "{manifest}"),
        ("state", "--no-color", "list", "{manifest}"),
    ],
    ids=["before", "after", "after-with-debug", "after-nested", "between"],
)
def test_global_options_go_before_or_after_the_command(
    capsys, tmp_path: Path, monkeypatch, args: tuple[str, ...]
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    manifest = tmp_path / "dsdb.yaml"
    manifest.write_text(
        "version: 1\nconnections:\n  local: {driver: sqlite, database: local.db}\n"
        "backups:\n  nightly: {connection: local}\n"
    )
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert "\x1b[" in run_cli(capsys, "validate", manifest).out, "a terminal gets colour"

    result = run_cli(capsys, *(a.format(manifest=manifest) for a in args))

    assert result.code == 0, result.text
    assert "\x1b[" not in result.out


def test_help_of_each_command_speaks_of_that_command(capsys) -> None:
    apply = run_cli(capsys, "apply", "--help")
    assert apply.code == 0
    assert "Apply only this resource" in apply.out and "Plan only" not in apply.out
    assert "Plan only this resource" in run_cli(capsys, "plan", "--help").out
    assert "Verify only this migration" in run_cli(capsys, "verify", "--help").out
    assert (
        "--id BACKUP_ID    Verify only this backup"
        in run_cli(capsys, "backups", "verify", "-h").out
    )


def _every_command(
    group: click.Group = cli, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = [(path, group)]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += _every_command(command, (*path, name))
        else:
            found.append(((*path, name), command))
    return found


@pytest.mark.parametrize(
    ("path", "command"), _every_command(), ids=lambda v: " ".join(v) if isinstance(v, tuple) else ""
)
def test_every_commands_help_has_a_summary_and_examples(
    capsys, path: tuple[str, ...], command: click.Command
) -> None:
    result = run_cli(capsys, *path, "--help")
    assert result.code == 0
    summary = result.out.split("\n\n")[1].strip()
    assert summary and summary.endswith((".", ")")), result.out
    examples = result.out.split("Examples:\n", 1)[1].split("\n\n")[0].splitlines()
    assert examples, result.out
    assert all(line.strip().startswith(" ".join(("dsdb", *path))) for line in examples), examples


def test_the_listing_shows_whole_summaries(capsys) -> None:
    for path, command in _every_command():
        if not isinstance(command, click.Group):
            continue
        listing = " ".join(run_cli(capsys, *path, "--help").out.split("Commands:")[1].split())
        assert "..." not in listing
        for name, sub in command.commands.items():
            first = " ".join((sub.help or "").split("\n\n")[0].split())
            assert f"{name} {first}" in listing


def test_plain_output_is_ascii(capsys, tmp_path: Path, write_manifest, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("NO_COLOR", raising=False)
    make_flights_db(tmp_path / "data/local.db")
    manifest = write_manifest(
        "version: 1\n"
        "connections:\n"
        "  local: {driver: sqlite, database: data/local.db}\n"
        "  staging: {driver: sqlite, database: data/staging.db}\n"
        "backups:\n  nightly: {connection: local}\n"
        "migrations:\n  winter: {from: local, to: staging, tables: [flights], follow: parents}\n"
    )
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    with sqlite3.connect(tmp_path / "data/local.db") as db:
        db.execute("UPDATE flights SET month = 12 WHERE id = 2")
    fancy = run_cli(capsys, "plan", manifest)
    assert "↻" in fancy.out and "→" in fancy.out, "the glyphs this test checks are in use"

    plain = run_cli(capsys, "plan", manifest, "--no-color")
    monkeypatch.setenv("NO_COLOR", "1")
    from_env = run_cli(capsys, "plan", manifest)

    for result in (plain, from_env):
        assert result.text.isascii(), [c for c in result.text if not c.isascii()]
        assert "<~> backup.nightly (resync)" in result.out
        assert "flights -> staging.flights" in result.out
    manifest.write_text(manifest.read_text().replace("to: staging", "to: stagin"))
    mistaken = run_cli(capsys, "validate", manifest)
    assert "unknown connection 'stagin' - did you mean 'staging'?" in mistaken.err
    assert mistaken.text.isascii()
    assert run_cli(capsys, "apply", manifest, "--auto-approve").text.isascii()


def test_every_command_is_found_by_name_and_listed() -> None:
    from dsdb_plan.cli.app import COMMAND_MODULES

    context = click.Context(cli)
    assert sorted(cli.list_commands(context)) == sorted(COMMAND_MODULES)
    for name in COMMAND_MODULES:
        command = cli.get_command(context, name)
        assert command is not None and command.name == name


def test_validate_loads_only_what_validating_needs(tmp_path: Path) -> None:
    manifest = tmp_path / "dsdb.yaml"
    manifest.write_text(
        "version: 1\nconnections:\n  local: {driver: sqlite, database: local.db}\n"
        "backups:\n  nightly: {connection: local}\n"
    )
    # SQLAlchemy and the drivers load with the first engine asked for; validating asks none.
    heavy = ["sqlalchemy", "dsdb_plan.project", "dsdb_plan.executor", "dsdb_plan.state"]
    script = (
        "import sys\n"
        "from dsdb_plan.cli import main\n"
        f"assert main(['validate', {str(manifest)!r}]) == 0\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert result.stdout.splitlines()[-1] == "[]"
