"""What starting `dsdb` loads: the modules only some commands need are imported by those."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dsdb_plan
from dsdb_plan.errors import DsdbError
from dsdb_plan.kinds import kind_of

#: Loaded only by the commands that use them: the notebook API, the backup and copy code
#: (by planning or applying a resource of the kind that needs it, or by `backups verify`),
#: the spec diff, the progress display of `apply`; DuckDB's driver and Arrow (by a DuckDB
#: connection); polars (deepdiff imports it) and Faker (by a masked copy).
LOADED_ON_DEMAND = (
    "dsdb_plan.manager",
    "dsdb_plan.archive",
    "dsdb_plan.migrate",
    "dsdb_plan.kinds.backup",
    "dsdb_plan.kinds.migration",
    "dsdb_plan.kinds.restore",
    "dsdb_plan.kinds.teardown",
    "deepdiff",
    "rich",
    "duckdb",
    "duckdb_engine",
    "pyarrow",
    "polars",
    "faker",
)


def _loaded_after(code: str) -> set[str]:
    """The modules of LOADED_ON_DEMAND that a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport sys\nprint(*sorted(sys.modules))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(run.stdout.split()) & set(LOADED_ON_DEMAND)


def test_importing_the_cli_loads_no_module_a_command_loads_on_demand() -> None:
    assert _loaded_after("import dsdb_plan.cli") == set()


def test_the_notebook_api_loads_on_first_use() -> None:
    assert _loaded_after("import dsdb_plan") == set()
    assert _loaded_after("import dsdb_plan\ndsdb_plan.ConnectionManager") >= {"dsdb_plan.manager"}


def test_the_package_still_exports_its_names() -> None:
    for name in dsdb_plan.__all__:
        assert getattr(dsdb_plan, name) is not None
    assert set(dsdb_plan.__all__) <= set(dir(dsdb_plan))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dsdb_plan.nope  # noqa: B018


def test_a_kind_is_loaded_when_first_asked_for_and_an_unknown_kind_is_refused() -> None:
    assert type(kind_of("teardown")).__name__ == "TeardownKind"
    assert kind_of("teardown") is kind_of("teardown")
    with pytest.raises(DsdbError, match="kind 'snapshot' are not supported"):
        kind_of("snapshot")


def test_dsdb_version_answers_without_loading_the_command_line() -> None:
    probe = (
        "import sys\nsys.argv = ['dsdb', '--version']\nfrom dsdb_plan.console import run\n"
        "try:\n    run()\nexcept SystemExit as stop:\n    assert stop.code == 0\n"
        "print(*sorted(sys.modules), file=sys.stderr)"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert run.stdout == f"dsdb {dsdb_plan.__version__}\n"
    assert not {"click", "pydantic", "sqlalchemy", "dsdb_plan.cli"} & set(run.stderr.split())


def test_the_migration_kind_loads_the_spec_diff_and_faker_when_first_used() -> None:
    loaded = _loaded_after("import dsdb_plan.kinds.migration")
    assert not loaded & {"deepdiff", "polars", "faker"}
    assert _loaded_after(
        "from dsdb_plan.specdiff import spec_changes\nspec_changes({'a': 1}, {'a': 2})"
    ) >= {"deepdiff"}
