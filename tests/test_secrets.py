"""A password written in the manifest, given in the environment, or inside a `url` never shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsdb_plan.manifest import load_manifest
from tests.helpers import run_cli

LITERAL = "literal-pass-6d2f"
FROM_ENV = "env-pass-b81c"
IN_URL = "url-pass-39ae"
VARIABLE = "var-pass-7e05"
# libpq and PyMySQL also take the password as a query option of the URL.
IN_URL_QUERY = "url-query-pass-5c1d"
IN_QUERY = "query-pass-a94e"
SECRETS = (LITERAL, FROM_ENV, IN_URL, VARIABLE, IN_URL_QUERY, IN_QUERY)

# Closed ports: `dsdb connections` tries each one and fails without a server to answer.
CONNECTIONS = f"""\
version: 1
variables:
  maria_password: {{sensitive: true}}
connections:
  written:
    driver: postgresql
    host: 127.0.0.1
    port: 1
    database: flights
    user: loader
    password: {LITERAL}
  from-env:
    driver: postgresql
    host: 127.0.0.1
    port: 2
    database: flights
    user: loader
    password: ${{env:DSDB_TEST_SECRET}}
  in-url:
    url: postgresql://loader:{IN_URL}@127.0.0.1:3/flights
  from-var:
    driver: mariadb
    host: 127.0.0.1
    port: 4
    database: flights
    user: loader
    password: ${{var:maria_password}}
  in-url-query:
    url: postgresql://loader@127.0.0.1:5/flights?password={IN_URL_QUERY}
  in-query:
    driver: mariadb
    host: 127.0.0.1
    port: 6
    database: flights
    user: loader
    query: {{password: {IN_QUERY}, charset: utf8mb4}}
"""


@pytest.fixture(autouse=True)
def _secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSDB_TEST_SECRET", FROM_ENV)


def _assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize("command", ["validate", "connections"])
def test_commands_never_print_a_password(
    command: str,
    write_manifest,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    path = write_manifest(CONNECTIONS)

    result = run_cli(capsys, command, path, "--var", f"maria_password={VARIABLE}")

    assert result.code == (0 if command == "validate" else 1)
    assert "Traceback" not in result.text
    _assert_no_secret(result.text)


def test_connections_reports_the_failure_without_the_password(
    write_manifest,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    path = write_manifest(CONNECTIONS)

    result = run_cli(capsys, "connections", path, "--var", f"maria_password={VARIABLE}")

    assert "cannot connect to postgresql at 127.0.0.1:3/flights" in result.out
    assert "6 of 6 connections unreachable" in result.err


@pytest.mark.parametrize(
    "mistake",
    [
        "backups:\n  nightly: {connection: nowhere}\n",  # a dangling reference elsewhere
        "migrations:\n  m: {from: written, to: in-url, mode: upsrt}\n",
        "settings: {stat: x}\n",
    ],
)
def test_errors_elsewhere_never_print_a_password(
    mistake: str,
    write_manifest,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    path = write_manifest(CONNECTIONS + mistake)

    result = run_cli(capsys, "validate", path, "--var", f"maria_password={VARIABLE}")

    assert result.code == 1
    assert "problem in manifest" in result.err
    _assert_no_secret(result.text)


@pytest.mark.parametrize(
    "connection",
    [
        f"{{driver: postgresql, hots: db, database: a, password: {LITERAL}}}",
        "{driver: postgresql, host: db, database: a, port: x, password: '${env:DSDB_TEST_SECRET}'}",
        f"{{url: 'postgress://loader:{IN_URL}@db/a'}}",
        f"{{url: 'postgresql://loader:{IN_URL}@db/a', host: db}}",
        f"{{url: 'postgresql://loader:{IN_URL}@db:port/a'}}",
    ],
    ids=["unknown-field", "bad-port", "bad-driver", "url-and-fields", "bad-url"],
)
def test_errors_in_the_connection_itself_never_print_its_password(
    connection: str,
    write_manifest,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    path = write_manifest(f"version: 1\nconnections:\n  prod: {connection}\n")

    result = run_cli(capsys, "validate", path)

    assert result.code == 1
    assert "connections.prod" in result.err
    _assert_no_secret(result.text)


def test_schema_output_holds_no_password(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "schema")

    assert result.code == 0
    _assert_no_secret(result.text)


def test_models_never_show_a_password(write_manifest) -> None:  # type: ignore[no-untyped-def]
    path: Path = write_manifest(CONNECTIONS)

    loaded = load_manifest(path, variables={"maria_password": VARIABLE})

    manifest = loaded.manifest
    shown = [repr(loaded), repr(manifest), str(manifest), manifest.model_dump_json()]
    for connection in manifest.connections.values():
        shown += [
            repr(connection),
            str(connection),
            connection.display(),
            str(connection.model_dump()),
        ]
    for text in shown:
        _assert_no_secret(text)
    # Still there for the driver.
    assert manifest.connections["in-url"].sqlalchemy_url().password == IN_URL
    assert manifest.connections["from-env"].sqlalchemy_url().password == FROM_ENV
    assert manifest.connections["from-var"].sqlalchemy_url().password == VARIABLE
    assert manifest.connections["in-url-query"].sqlalchemy_url().query["password"] == IN_URL_QUERY
    assert manifest.connections["in-query"].sqlalchemy_url().query["password"] == IN_QUERY
