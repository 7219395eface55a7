"""The deploy recipes are valid for their tools, and their timeouts agree with each other."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
BIN = Path(sys.executable).parent
UNIT = DEPLOY / "systemd" / "fluxlit@.service"


def unit_value(key: str) -> str:
    match = re.search(rf"^{key}=(.*)$", UNIT.read_text(), re.MULTILINE)
    assert match, key
    return match.group(1).strip()


@pytest.mark.external("systemd-analyze")
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify needs an instance name and an ExecStart that exists on this machine.
    text = UNIT.read_text().replace("/srv/%i/.venv/bin/fluxlit", str(BIN / "fluxlit"))
    unit = tmp_path / "fluxlit@demo.service"
    unit.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "fluxlit@demo.service" not in result.stderr, result.stderr


def test_systemd_unit_is_notify_with_watchdog_and_stops_after_our_graceful_timeout() -> None:
    assert unit_value("Type") == "notify"
    assert unit_value("NotifyAccess") == "main"
    assert unit_value("KillMode") == "mixed"
    graceful_flag = re.search(r"--graceful-timeout (\d+)", unit_value("ExecStart"))
    assert graceful_flag is not None
    graceful = float(graceful_flag.group(1))
    child_grace = 5
    assert float(unit_value("TimeoutStopSec")) > graceful + child_grace
    assert int(unit_value("WatchdogSec")) >= 10
    for hardening in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "RuntimeDirectory"):
        assert unit_value(hardening)


@pytest.mark.parametrize("dockerfile", ["docker/Dockerfile", "proxy-smoke/app.Dockerfile"])
def test_dockerfiles_pass_hadolint(dockerfile: str) -> None:
    hadolint = BIN / "hadolint"
    result = subprocess.run([str(hadolint), str(DEPLOY / dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_container_runs_fluxlit_as_pid_1_with_exec_form_and_a_healthcheck() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["fluxlit", "serve"]' in text
    assert "STOPSIGNAL SIGTERM" in text
    assert "/api/healthz" in text
    assert re.search(r"^USER \d+", text, re.MULTILINE)
    assert "tini" not in text.lower().replace("no tini", "")


def test_kubernetes_manifests_validate_offline() -> None:
    validator = BIN / "kubernetes-validate"
    manifests = sorted(str(p) for p in (DEPLOY / "kubernetes").glob("*.yaml"))
    result = subprocess.run([str(validator), "--strict", *manifests], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_probes_and_grace_period_fit_the_runtime() -> None:
    deployment = yaml.safe_load((DEPLOY / "kubernetes" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/api/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/api/readyz"
    graceful = float(container["args"][container["args"].index("--graceful-timeout") + 1])
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + graceful + 5
    service = yaml.safe_load((DEPLOY / "kubernetes" / "service.yaml").read_text())
    assert service["spec"]["sessionAffinity"] == "ClientIP"
