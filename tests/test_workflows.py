"""The GitHub workflows call what exists, and do what the seed's CI describes; .ci/run calls the same targets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
MAKE_TARGET = re.compile(r"^([A-Za-z][\w-]*):", re.MULTILINE)
MAKE_CALL = re.compile(r"\bmake((?:[ \t]+(?:[a-z][\w-]*|[A-Z_]+=\S+))+)")
SCRIPT_CALL = re.compile(r"(?:\./)?(scripts/[\w./-]+)")


def load(name: str) -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return document


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    on: dict[str, Any] = workflow[True]  # YAML 1.1 reads the key `on` as the boolean true
    return on


def run_lines(workflow: dict[Any, Any]) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]


def ci_run_commands() -> str:
    """.ci/run without its comments, whose prose ("the same make targets and scripts") is not a make call."""
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def make_targets_called(text: str) -> set[str]:
    code = re.sub(r"#.*", "", text)  # comments name make targets in prose
    return {word for call in MAKE_CALL.findall(code) for word in call.split() if "=" not in word}


def test_every_make_target_and_script_a_workflow_or_ci_run_names_exists() -> None:
    targets = set(MAKE_TARGET.findall((ROOT / "Makefile").read_text()))
    texts = ["\n".join(run_lines(load(path.name))) for path in sorted(WORKFLOWS.glob("*.yml"))]
    texts.append(ci_run_commands())
    called = set().union(*(make_targets_called(text) for text in texts))
    scripts = {script for text in texts for script in SCRIPT_CALL.findall(text)}
    assert called, "no make target found: the pattern is broken"
    assert called <= targets, f"make targets that do not exist: {sorted(called - targets)}"
    assert scripts, "no script found: the pattern is broken"
    assert [script for script in sorted(scripts) if not (ROOT / script).is_file()] == []


def test_ci_run_and_the_workflows_run_the_same_gates() -> None:
    ci_run = make_targets_called(ci_run_commands())
    workflows = set().union(*(make_targets_called("\n".join(run_lines(load(p.name)))) for p in WORKFLOWS.glob("*.yml")))
    assert {"lint", "docs", "test", "e2e", "audit", "audit-floors"} & ci_run <= workflows
    assert {"lint", "test", "e2e", "audit"} <= ci_run


def test_the_main_test_job_runs_the_fast_coverage_gate_on_python_3_10_to_3_13() -> None:
    job = load("ci.yml")["jobs"]["test"]
    assert job["strategy"]["matrix"]["python"] == ["3.10", "3.11", "3.12", "3.13"]
    assert any("make coverage-fast" in line for line in run_lines({"jobs": {"test": job}}))


def test_e2e_uploads_playwright_traces_on_failure() -> None:
    steps = load("ci.yml")["jobs"]["e2e"]["steps"]
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-artifact"))
    assert (upload["if"], upload["with"]["name"], upload["with"]["path"]) == (
        "failure()",
        "playwright-traces",
        "test-results/",
    )


@pytest.mark.parametrize("job", ["docs", "ty-check", "lint"])
def test_docs_ty_and_lint_jobs_exist(job: str) -> None:
    assert run_lines({"jobs": {job: load("ci.yml")["jobs"][job]}})


def test_the_security_audit_uploads_the_sbom_as_cyclonedx_sbom() -> None:
    steps = load("security-audit.yml")["jobs"]["audit"]["steps"]
    names = {step["with"]["name"]: step["with"]["path"] for step in steps if "upload-artifact" in step.get("uses", "")}
    assert names["cyclonedx-sbom"] == "artifacts/cyclonedx-sbom.json"


def test_the_scheduled_soak_validates_the_script_then_soaks_fluxlit_without_blocking() -> None:
    workflow = load("soak-scheduled.yml")
    assert set(triggers(workflow)) == {"schedule", "workflow_dispatch"}
    first, second = workflow["jobs"].values()
    assert "scripts/soak_http_selftest.sh" in "\n".join(run_lines({"jobs": {"a": first}}))
    assert second["continue-on-error"] is True
    assert "scripts/soak_smoke_app.sh" in "\n".join(run_lines({"jobs": {"b": second}}))


def test_the_fluxlit_soak_runs_on_dispatch_only() -> None:
    assert set(triggers(load("soak-fluxlit-dispatch.yml"))) == {"workflow_dispatch"}


def test_upgrade_smoke_runs_weekly_on_mondays_and_never_blocks() -> None:
    workflow = load("upgrade-smoke.yml")
    (schedule,) = triggers(workflow)["schedule"]
    assert schedule["cron"].split()[4] == "1"  # day of week: Monday
    assert "workflow_dispatch" in triggers(workflow)
    (job,) = workflow["jobs"].values()
    assert job["continue-on-error"] is True
