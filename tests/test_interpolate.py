"""`${env:NAME}`, `${env:NAME:-default}`, `$${`, and typed `${var:NAME}` with --var overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsdb_plan.errors import ManifestError
from dsdb_plan.manifest import parse_manifest
from dsdb_plan.models import Manifest
from tests.helpers import CliResult, run_cli


def _parse(text: str, env: dict[str, str] | None = None, **variables: str) -> Manifest:
    return parse_manifest(
        text, "m.yaml", base_dir=Path("/base"), env=env or {}, variables=variables
    )


def _problems(text: str, env: dict[str, str] | None = None, **variables: str) -> list[str]:
    with pytest.raises(ManifestError) as raised:
        _parse(text, env, **variables)
    return [str(problem) for problem in raised.value.problems]


def _server(**fields: str) -> str:
    inner = ", ".join(f"{key}: '{value}'" for key, value in fields.items())
    return f"version: 1\nconnections:\n  db: {{driver: postgresql, {inner}}}\n"


def test_env_reference_takes_the_variable() -> None:
    manifest = _parse(_server(host="${env:PGHOST}", database="flights"), env={"PGHOST": "db1"})

    assert manifest.connections["db"].host == "db1"


def test_env_reference_inside_a_longer_string() -> None:
    manifest = _parse(
        _server(host="db-${env:REGION}.internal", database="f_${env:REGION}"), env={"REGION": "eu"}
    )

    assert manifest.connections["db"].host == "db-eu.internal"
    assert manifest.connections["db"].database == "f_eu"


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, "fallback"), ({"PGHOST": "db1"}, "db1"), ({"PGHOST": ""}, "fallback")],
    ids=["unset", "set", "set-empty"],
)
def test_env_default(env: dict[str, str], expected: str) -> None:
    manifest = _parse(_server(host="${env:PGHOST:-fallback}", database="x"), env=env)

    assert (manifest.connections["db"].host or "") == expected


def test_set_but_empty_env_without_a_default_is_the_empty_string() -> None:
    manifest = _parse(_server(host="h${env:SUFFIX}", database="x"), env={"SUFFIX": ""})

    assert manifest.connections["db"].host == "h"


def test_empty_state_url_falls_back_to_the_default_state_file(
    capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GitHub Actions passes a secret that is not configured as an empty string.
    monkeypatch.setenv("DSDB_STATE_URL", "")
    manifest = tmp_path / "dsdb.yaml"
    manifest.write_text("version: 1\nsettings: {state: '${env:DSDB_STATE_URL:-.dsdb/state.db}'}\n")

    assert run_cli(capsys, "state", "list", manifest).code == 0
    assert run_cli(capsys, "state", "push", _empty_state(tmp_path), manifest).code == 0
    assert (tmp_path / ".dsdb/state.db").is_file()


def _empty_state(folder: Path) -> Path:
    document = folder / "state.json"
    document.write_text('{"lineage": "", "serial": 0, "resources": {}, "checkpoints": {}}')
    return document


def test_empty_default() -> None:
    manifest = _parse(_server(host="h${env:SUFFIX:-}", database="x"))

    assert manifest.connections["db"].host == "h"


def test_unset_env_names_the_variable_and_the_field() -> None:
    problems = _problems(_server(host="${env:PGHOST}", database="x"))

    assert problems == ["m.yaml:3:34: connections.db.host: environment variable PGHOST is not set"]


def test_double_dollar_writes_a_literal_reference() -> None:
    manifest = _parse(
        "version: 1\nconnections:\n"
        "  db: {driver: sqlite, database: x.db, description: 'costs $$5, see $${env:HOME}'}\n"
    )

    assert manifest.connections["db"].description == "costs $$5, see ${env:HOME}"


def test_a_reference_that_is_not_env_or_var_is_refused() -> None:
    problems = _problems(_server(host="${HOST}", database="x"))

    assert len(problems) == 1
    assert "cannot read '${HOST}': expected ${env:NAME} or ${var:NAME}" in problems[0]


TYPED = """\
version: 1
variables:
  port: {type: integer, default: 5432}
  protect: {type: boolean, default: "yes"}
  database: {description: "required: it has no default"}
connections:
  db:
    driver: postgresql
    host: db-${var:port}
    port: ${var:port}
    database: ${var:database}
    protect: ${var:protect}
"""


def test_typed_variables_take_their_type() -> None:
    manifest = _parse(TYPED, database="flights")

    db = manifest.connections["db"]
    assert db.port == 5432
    assert db.host == "db-5432"  # inside a longer string a value is text
    assert db.protect is True
    assert db.database == "flights"


def test_var_overrides_the_default() -> None:
    manifest = _parse(TYPED, database="flights", port="6543", protect="false")

    assert manifest.connections["db"].port == 6543
    assert manifest.connections["db"].protect is False


def test_a_required_variable_without_a_value_is_named() -> None:
    problems = _problems(TYPED)

    assert problems[0] == (
        "m.yaml:5:13: variables.database: variable 'database' is required: "
        "give --var database=VALUE"
    )
    assert "variable 'database' has no value" in problems[1]
    assert len(problems) == 2


def test_a_value_of_the_wrong_type_is_refused() -> None:
    problems = _problems(TYPED, database="flights", port="fifty")

    assert any("variables.port: expected integer, got 'fifty'" in p for p in problems)


def test_an_undeclared_var_override_is_refused() -> None:
    problems = _problems(TYPED, database="flights", prot="x")

    assert problems == ["m.yaml:3:3: variables: --var prot is not a declared variable"]


def test_an_undeclared_variable_reference_is_named() -> None:
    problems = _problems(_server(host="${var:region}", database="x"))

    assert problems == ["m.yaml:3:34: connections.db.host: variable 'region' is not declared"]


@pytest.fixture
def var_file(tmp_path: Path) -> Path:
    return tmp_path / "vars.yaml"


def _validate_with(
    capsys: pytest.CaptureFixture[str], manifest: Path, var_file: Path, text: str
) -> CliResult:
    """`dsdb validate MANIFEST --var-file VAR_FILE`, VAR_FILE holding `text`."""
    var_file.write_text(text)
    return run_cli(capsys, "validate", manifest, "--var-file", var_file)


def test_cli_var_and_var_file(
    write_manifest,
    var_file: Path,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    path = write_manifest(TYPED)

    without = run_cli(capsys, "validate", path)
    from_file = _validate_with(capsys, path, var_file, "database: flights\nport: 1\n")
    overridden = run_cli(capsys, "validate", path, "--var-file", var_file, "--var", "port=x")

    assert without.code == 1
    assert "give --var database=VALUE" in without.err
    assert from_file.code == 0, from_file.err
    assert overridden.code == 1
    assert "variables.port: expected integer, got 'x'" in overridden.err


def test_cli_var_needs_a_name_and_a_value(
    write_manifest,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    result = run_cli(capsys, "validate", write_manifest(TYPED), "--var", "database")

    assert result.code == 1
    assert result.err == "Error: --var expects NAME=VALUE, got 'database'\n"


def test_a_var_file_value_that_is_no_scalar_is_refused(
    write_manifest,
    var_file: Path,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    text = "database: [1, 2]\nport: 1\n"
    result = _validate_with(capsys, write_manifest(TYPED), var_file, text)

    assert result.code == 1
    assert result.err == (
        f"Error: 1 problem in variable file:\n  {var_file}:1:11: database: a list; a variable's "
        "value is a scalar\n"
    )


def test_var_file_problems_point_at_the_var_files_lines(
    write_manifest,
    var_file: Path,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    path = write_manifest(TYPED)
    text = "# staging\ndatabase: flights\nport: fifty\nprotec: true\n"
    result = _validate_with(capsys, path, var_file, text)

    assert result.code == 1
    assert result.err == (
        "Error: 4 problems in manifest:\n"
        f"  {path}:9:11: connections.db.host: variable 'port' has no value (see {var_file}:3)\n"
        f"  {path}:10:11: connections.db.port: variable 'port' has no value (see {var_file}:3)\n"
        f"  {var_file}:3:7: port: expected integer, got 'fifty'\n"
        f"  {var_file}:4:9: 'protec' is not a declared variable — did you mean 'protect'?\n"
    )


def test_a_var_file_with_a_yaml_mistake_is_located(
    write_manifest,
    var_file: Path,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    text = "database: flights\ndatabase: other\n"
    result = _validate_with(capsys, write_manifest(TYPED), var_file, text)

    assert result.err == (
        "Error: 1 problem in variable file:\n  "
        f"{var_file}:2:1: database: duplicate key 'database' (first defined on line 1)\n"
    )


def test_an_unset_variable_is_the_one_problem_not_the_url_it_leaves_empty() -> None:
    text = "version: 1\nconnections:\n  db: {url: '${env:DB_URL}'}\n"

    assert _problems(text, env={}) == [
        "m.yaml:3:13: connections.db.url: environment variable DB_URL is not set"
    ]


def test_validate_checks_structure_without_secrets_and_names_the_unset(
    write_manifest,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    for name in ("DSDB_TEST_PROD_URL", "DSDB_TEST_STAGE_PW"):
        monkeypatch.delenv(name, raising=False)
    path = write_manifest(
        "version: 1\n"
        "connections:\n"
        "  local: {driver: sqlite, database: local.db}\n"
        "  prod: {url: '${env:DSDB_TEST_PROD_URL}', protect: true}\n"
        "  stage: {driver: postgresql, host: db, database: x,"
        " password: '${env:DSDB_TEST_STAGE_PW}'}\n"
        "migrations:\n"
        "  up: {from: local, to: prod}\n"
        "  down: {from: prod, to: stage, depends_on: [migration.up]}\n"
    )

    validated = run_cli(capsys, "validate", path)
    planned = run_cli(capsys, "plan", path)

    assert validated.code == 0, validated.err
    assert validated.out == (
        f"✓ {path} is valid (3 connections, 2 resources).\n"
        "  2 environment variables unset, which plan and apply will need:\n"
        f"    {path}:4:15: connections.prod.url: environment variable DSDB_TEST_PROD_URL "
        "is not set\n"
        f"    {path}:5:64: connections.stage.password: environment variable DSDB_TEST_STAGE_PW "
        "is not set\n"
    )
    assert planned.code == 1
    assert "environment variable DSDB_TEST_PROD_URL is not set" in planned.err


def test_validate_without_secrets_still_finds_the_structures_mistakes(
    write_manifest,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.delenv("DSDB_TEST_PROD_URL", raising=False)
    path = write_manifest(
        "version: 1\n"
        "connections:\n"
        "  local: {driver: sqlite, database: local.db}\n"
        "  prod: {url: '${env:DSDB_TEST_PROD_URL}', hots: x}\n"
        "migrations:\n"
        "  up: {from: local, to: prod, depends_on: [migration.down]}\n"
        "  down: {from: prod, to: local, depends_on: [migration.up]}\n"
    )
    mistaken = run_cli(capsys, "validate", path)
    assert mistaken.code == 1
    assert mistaken.err == (
        f"Error: 1 problem in manifest:\n  {path}:4:44: connections.prod.hots: unknown field "
        "'hots' — did you mean 'host'?\n"
    )

    path.write_text(path.read_text().replace(", hots: x", ""))
    cyclic = run_cli(capsys, "validate", path)
    assert cyclic.code == 1
    assert "dependency cycle: migration.down -> migration.up -> migration.down" in cyclic.err
