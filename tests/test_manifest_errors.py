"""Broken manifests: each gives exit 1, `file:line:column`, what was expected, no traceback.

The corpus is data, one file per mistake, in tests/manifests/broken/; the table below says
where each mistake is and what the message must say.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import run_cli

MANIFESTS = Path(__file__).parent / "manifests"
BROKEN = MANIFESTS / "broken"

# file stem -> (line the message points at, phrase it must contain)
CASES: dict[str, tuple[int, str]] = {
    "duplicate-key": (4, "connections.local: duplicate key 'local' (first defined on line 3)"),
    "duplicate-field": (7, "connections.prod.host: duplicate key 'host' (first defined on line 5)"),
    "unknown-section": (2, "unknown field 'conections' — did you mean 'connections'?"),
    "unknown-setting": (3, "settings.stat: unknown field 'stat' — did you mean 'state'?"),
    "unknown-connection-field": (5, "unknown field 'hots' — did you mean 'host'?"),
    "unknown-table-option": (
        11,
        "tables.flights.wher: unknown field 'wher' — did you mean 'where'?",
    ),
    "unknown-operator": (12, "where.month.gtx: unknown field 'gtx' — did you mean 'gt'?"),
    "wrong-type-port": (6, "connections.prod.port: input should be a valid integer"),
    "wrong-type-keep": (7, "backups.nightly.keep: input should be a valid integer"),
    "wrong-type-section": (3, "connections: input should be a valid dictionary"),
    "wrong-type-driver": (4, "connections.local.driver: must be a string, not int"),
    "wrong-version": (1, "version: unknown value 2 (expected one of: 1)"),
    "missing-version": (1, "missing required field 'version'"),
    "missing-driver": (3, "connections.local: connection requires a driver"),
    "missing-link": (3, "connections.prod: connection requires a link"),
    "misspelt-driver": (4, "unknown driver 'postgress' — did you mean 'postgresql'?"),
    "misspelt-mode": (9, "unknown value 'upsrt' — did you mean 'upsert'?"),
    "dangling-connection": (
        8,
        "migrations.to-prod.to: unknown connection 'prd' — did you mean 'prod'?",
    ),
    "dangling-backup": (9, "unknown backup 'local-nighty' — did you mean 'local-nightly'?"),
    "dangling-depends-on": (
        11,
        "unknown resource 'backup.nighty' — did you mean 'backup.nightly'?",
    ),
    "bad-address": (8, "'nightly' is not a resource address: expected kind.name"),
    "bad-name": (4, "'my prod' is not a valid name"),
    "cycle": (9, "dependency cycle: "),
    "unordered-read": (
        8,
        "migrations.b-to-c.from: reads 'b', which migration.a-to-b writes, and neither depends "
        "on the other: add depends_on: [migration.a-to-b] here",
    ),
    "undeclared-var": (5, "connections.prod.host: variable 'region' is not declared"),
    "required-var": (3, "variables.region: variable 'region' is required: give --var region=VALUE"),
    "bad-reference": (5, "cannot read '${PGHOST}': expected ${env:NAME} or ${var:NAME}"),
    "same-database-migration": (7, "'local' is the same database as the source 'local'"),
    "same-database-two-names": (4, "connections.prod-again: same database as connection 'prod'"),
    "restore-two-sources": (9, "give exactly one of `backup` or `path`"),
    "teardown-of-restored-tables": (
        10,
        "teardowns.td.connection: drops table weird of 'other' that restore.r1 writes",
    ),
    "two-migrations-one-mirrored-table": (
        13,
        "table events of 'prod' is also written by migration.from-east (upsert; here mirror)",
    ),
    "teardown-of-migrated-tables": (
        14,
        "drops table winter_flights of 'prod' that migration.to-prod writes",
    ),
    "url-and-fields": (4, "give either url or the link fields, not both"),
    "driver-and-url-differ": (4, "driver and url name different databases"),
    "sqlite-with-host": (4, "sqlite takes only a database path"),
    "binary-garbage": (1, "file is not UTF-8 text"),
    "nul-byte": (3, "invalid YAML: character #x0000 is not allowed"),
    "invalid-utf8": (3, "file is not UTF-8 text"),
    "empty": (1, "manifest is empty"),
    "comments-only": (1, "manifest is empty"),
    "top-level-list": (1, "a manifest is a mapping with `version: 1` and sections"),
    "top-level-scalar": (1, "a manifest is a mapping with `version: 1` and sections"),
    "tabs": (
        3,
        "invalid YAML: found character '\\t' that cannot start any token (indent with spaces: "
        "YAML does not allow tabs)",
    ),
    "invalid-syntax": (4, "invalid YAML: expected ',' or '}'"),
    "unquoted-reference-in-braces": (
        3,
        "invalid YAML: a ${...} reference inside {...} or [...] must be quoted, as in "
        '{password: "${env:PGPASSWORD}"}',
    ),
    "python-tag": (2, "unsupported YAML tag '!!python/object/apply:os.system'"),
    "python-scalar-tag": (5, "unsupported YAML tag '!!python/name:os.system'"),
    "custom-tag": (3, "unsupported YAML tag '!include'"),
    "billion-laughs": (2, "document expands to too many values (nested aliases?)"),
    "bad-indentation": (
        5,
        "invalid YAML: bad indentation: this line starts at column 4, but the keys it sits "
        "among (from line 3) start at column 3",
    ),
    "key-indented-too-far": (5, "invalid YAML: a key cannot start here: it is indented under"),
    "key-at-wrong-level": (
        4,
        "connections.driver: 'driver' is a field of a connection, not the name of one: indent "
        "it under the connection it belongs to",
    ),
    "connection-under-restores": (
        5,
        "restores.prod.driver: unknown field 'driver' — a connection's field: does 'prod' "
        "belong under `connections:`?",
    ),
    "section-not-a-mapping": (
        2,
        "settings: expected settings fields (a mapping), not str '.dsdb/state.db'",
    ),
    "variable-type-mapping": (
        4,
        "variables.env.type: unknown value {'name': 'string'} (expected one of: string, "
        "integer, number, boolean)",
    ),
    "variable-type-list": (4, "variables.env.type: unknown value ['string', 'integer']"),
    "tag-float": (3, "settings.lock_timeout: 'x' is not a valid !!float value"),
    "tag-int": (5, "backups.nightly.keep: 'abc' is not a valid !!int value"),
    "tag-bool": (3, "connections.local.protect: 'maybe' is not a valid !!bool value"),
    "tag-timestamp": (3, "variables.since.default: 'nope' is not a valid !!timestamp value"),
    "tag-timestamp-date": (3, "'2020-13-45' is not a valid !!timestamp value"),
    "deep-nesting": (2, "values nested more than 64 levels deep; refusing to load"),
    "self-alias": (3, "connections.local: an alias inside the value it names"),
}


def test_every_broken_manifest_has_a_case() -> None:
    assert sorted(p.stem for p in BROKEN.glob("*.yaml")) == sorted(CASES)


@pytest.mark.parametrize("stem", sorted(CASES))
def test_broken_manifest(
    stem: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DSDB_TEST_UNSET_VARIABLE", raising=False)
    line, phrase = CASES[stem]
    path = BROKEN / f"{stem}.yaml"

    result = run_cli(capsys, "validate", path)

    assert result.code == 1
    assert result.out == ""
    assert "Traceback" not in result.err
    assert "this is a bug in dsdb" not in result.err
    where = rf"^  {re.escape(str(path))}:{line}:\d+: "
    assert re.search(where + r".*" + re.escape(phrase), result.err, re.M), result.err


def test_cycle_message_lists_the_cycle(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "validate", BROKEN / "cycle.yaml")

    cycle = re.search(r"dependency cycle: (.*)$", result.err, re.M)
    assert cycle, result.err
    steps = cycle.group(1).split(" -> ")
    assert steps[0] == steps[-1]
    assert sorted(steps[:-1]) == ["migration.a-to-b", "migration.b-to-a"]


def test_every_problem_in_a_file_is_reported_at_once(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DSDB_TEST_UNSET_VARIABLE", raising=False)
    path = MANIFESTS / "multiple-problems.yaml"

    result = run_cli(capsys, "validate", path)

    assert result.code == 1
    assert "Error: 5 problems in manifest:" in result.err
    found = re.findall(rf"^  {re.escape(str(path))}:(\d+):\d+: (\S+): ", result.err, re.M)
    assert found == [
        ("2", "conections"),
        ("4", "connections.local.drver"),
        ("6", "connections.prod"),
        ("9", "backups.nightly.connection"),
        ("12", "migrations.to-prod.mode"),
    ], result.err
    planned = run_cli(capsys, "plan", path)
    assert "Error: 6 problems in manifest:" in planned.err
    assert "connections.prod.password: environment variable" in planned.err


def test_a_missing_driver_is_reported_beside_an_unset_variable(
    capsys: pytest.CaptureFixture[str],
    write_manifest,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.delenv("DSDB_TEST_UNSET_VARIABLE", raising=False)
    path = write_manifest(
        "version: 1\n"
        "connections:\n"
        "  prod: {host: db, database: a, password: '${env:DSDB_TEST_UNSET_VARIABLE}'}\n"
    )

    result = run_cli(capsys, "plan", path)

    assert "connections.prod: connection requires a driver" in result.err
    assert "environment variable DSDB_TEST_UNSET_VARIABLE is not set" in result.err


def test_validation_of_a_union_reports_the_branch_that_was_meant(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = run_cli(capsys, "validate", BROKEN / "unknown-table-option.yaml")

    # `tables` is a list or a map; the map was meant, so "should be a valid list" is noise.
    assert "Error: 1 problem in manifest:" in result.err
    assert "valid list" not in result.err


def test_a_missing_manifest(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    result = run_cli(capsys, "validate", tmp_path / "absent.yaml")

    assert result.code == 1
    assert f"manifest not found: {tmp_path / 'absent.yaml'}" in result.err
    assert "Traceback" not in result.err


# Manifests close to the clashes above that are fine: file stem -> (why, text).
VALID = {
    "several-sources-upsert-one-table": (
        "appending or upserting into one table from several sources",
        "version: 1\nconnections:\n"
        "  east: {driver: sqlite, database: east.db}\n"
        "  west: {driver: sqlite, database: west.db}\n"
        "  prod: {driver: sqlite, database: prod.db}\n"
        "migrations:\n"
        "  from-east: {from: east, to: prod, mode: upsert, tables: [events]}\n"
        "  from-west: {from: west, to: prod, mode: append, tables: [events]}\n",
    ),
    "teardown-beside-a-whole-restore": (
        "which tables a restore of a whole backup writes only the plan knows",
        "version: 1\nconnections:\n"
        "  local: {driver: sqlite, database: local.db}\n"
        "  scratch: {driver: sqlite, database: scratch.db}\n"
        "backups:\n  nightly: {connection: local}\n"
        "restores:\n  into-scratch: {backup: nightly, to: scratch, replace_existing: true}\n"
        "teardowns:\n  old-scratch: {connection: scratch, tables: [tmp_import]}\n",
    ),
}


@pytest.mark.parametrize("stem", sorted(VALID))
def test_no_clash_where_none_can_be_seen(
    stem: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / f"{stem}.yaml"
    path.write_text(VALID[stem][1])

    result = run_cli(capsys, "validate", path)

    assert result.code == 0, result.err


def test_a_driver_alias_agrees_with_the_url_it_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "dsdb.yaml"
    manifest.write_text(
        "version: 1\nconnections:\n  prod:\n    driver: postgres\n"
        "    url: postgresql://loader@db.internal/flights\n"
    )
    result = run_cli(capsys, "validate", manifest)
    assert result.code == 0, result.err
