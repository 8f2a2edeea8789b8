"""The GitOps example: its workflow is a valid GitHub workflow, and its commands work when
played as a pull request (validate, plan as markdown) and a merge (apply) against a shared
PostgreSQL state."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import make_flights_db, run_cli
from tests.servers import ServerDatabase

ROOT = Path(__file__).parent.parent
GITOPS = ROOT / "examples" / "gitops"
WORKFLOW = GITOPS / ".github" / "workflows" / "dsdb.yml"


def test_workflow_matches_the_published_github_workflow_schema() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_apply_is_serialized_and_plan_only_comments() -> None:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    assert jobs["apply"]["concurrency"] == {"group": "dsdb-apply", "cancel-in-progress": False}
    assert jobs["plan"]["permissions"]["pull-requests"] == "write"
    assert "pull-requests" not in jobs["apply"]["permissions"]


def test_pre_commit_hook_runs_dsdb_validate(capsys) -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hooks[0]["entry"] == "dsdb validate"
    manifests = [str(GITOPS / "dsdb.yaml"), str(ROOT / "examples/quickstart/dsdb.yaml")]
    assert run_cli(capsys, "validate", *manifests).code == 0


def test_dsdb_is_installed_from_its_repository_not_an_index(tmp_path: Path) -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    package = workflow["env"]["DSDB_PACKAGE"]
    assert package.startswith("dsdb-plan @ git+"), "no index serves a bare dsdb-plan"
    steps = [
        s for job in workflow["jobs"].values() for s in job["steps"] if s.get("id") == "install"
    ]
    assert [s["run"] for s in steps] == ['pip install "$DSDB_PACKAGE"'] * 2
    # The step as a job runs it, with DSDB_PACKAGE naming a folder: this repository.
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            "bash",
            "-c",
            steps[0]["run"].replace(
                "pip install", "$PIP install --dry-run --no-deps --report $REPORT"
            ),
        ],
        env={
            **os.environ,
            "DSDB_PACKAGE": str(ROOT),
            "PIP": f"{sys.executable} -m pip",
            "REPORT": str(report),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    installed = json.loads(report.read_text())["install"]
    assert [item["metadata"]["name"] for item in installed] == ["dsdb-plan"]


def _run_steps(job: dict[str, Any], cwd: Path, env: dict[str, str]) -> None:
    """Run a job's shell steps as the runner would, skipping actions and the install."""
    for step in job["steps"]:
        if "run" not in step or step.get("id") == "install":
            continue
        result = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", step["run"]],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"{step.get('name')}: {result.stdout}{result.stderr}"


@pytest.mark.postgres
def test_pull_request_then_merge_against_shared_postgres_state(
    tmp_path: Path, postgres_db: ServerDatabase
) -> None:
    work = tmp_path / "repo"
    shutil.copytree(GITOPS, work)
    make_flights_db(work / "warehouse.db")
    outputs = tmp_path / "github_output"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DSDB_STATE_URL": postgres_db.url_string,
        "DSDB_WAREHOUSE_URL": f"sqlite:///{work / 'warehouse.db'}",
        "DSDB_USER": "reviewer",
        "GITHUB_OUTPUT": str(outputs),
        "NO_COLOR": "1",
    }
    workflow = yaml.safe_load(WORKFLOW.read_text())
    # The workflow's own settings; the ones it takes from secrets and GitHub are set above.
    env.update({k: v for k, v in workflow["env"].items() if "${{" not in str(v)})
    jobs = workflow["jobs"]

    _run_steps(jobs["plan"], work, env)
    comment = (work / "plan.md").read_text()
    assert comment.startswith("## dsdb plan")
    assert "Plan: 2 to create." in comment
    assert outputs.read_text().strip() == "changes=true"

    _run_steps(jobs["apply"], work, env)
    assert (work / f"scratch/{env['DSDB_ENV']}.db").exists()  # the environment it names

    outputs.unlink()
    _run_steps(jobs["plan"], work, env)
    assert "No changes." in (work / "plan.md").read_text()
    assert outputs.read_text().strip() == "changes=false"
