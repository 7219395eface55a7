"""The deploy recipes are valid for their tools, and their timeouts agree with each other."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._edge import DEPLOY, NGINX_SITES

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


# --- the Docker proxy smoke kit (deploy/proxy-smoke): no Docker here, so its structure is checked ----------------

SMOKE_KIT = DEPLOY / "proxy-smoke"


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((SMOKE_KIT / "docker-compose.yml").read_text())["services"]
    return services


def nginx_services() -> dict[str, Any]:
    return {name: svc for name, svc in compose_services().items() if svc.get("image", "").startswith("nginx:")}


def mounted(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to the kit) of every bind mount."""
    return {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}


def test_the_kit_serves_the_root_full_path_strip_prefix_and_tls_sites_on_loopback_ports() -> None:
    published = {port for svc in compose_services().values() for port in svc.get("ports", [])}
    assert published == {"127.0.0.1:8080:80", "127.0.0.1:8081:80", "127.0.0.1:8083:80", "127.0.0.1:8444:443"}


def test_every_nginx_site_is_a_recipe_the_slow_suite_runs_with_the_same_serve_flags() -> None:
    suite = {site: flags for site, flags, _prefix in NGINX_SITES}
    services = compose_services()
    kit: dict[str, tuple[str, ...]] = {}
    for svc in nginx_services().values():
        files = mounted(svc)
        site = files["/etc/nginx/conf.d/default.conf"]  # replaces the image's own site, which also listens on 80
        assert files["/etc/nginx/conf.d/00-fluxlit-http.conf"] == "../nginx/fluxlit-http.conf"
        assert files["/etc/nginx/fluxlit-proxy-params.conf"] == "../nginx/fluxlit-proxy-params.conf"
        assert all((SMOKE_KIT / path).is_file() for path in files.values() if path.startswith(".."))
        app = services[svc["network_mode"].removeprefix("service:")]  # 127.0.0.1:8000 in the recipes is this app
        kit[site.removeprefix("../nginx/")] = tuple(app["command"][1:])
    assert kit == suite


def test_the_tls_site_reads_certificates_the_kit_generates_itself() -> None:
    services = compose_services()
    sites = nginx_services().values()
    tls = next(svc for svc in sites if mounted(svc)["/etc/nginx/conf.d/default.conf"] == "../nginx/fluxlit-tls.conf")
    assert "certs:/etc/ssl/fluxlit:ro" in tls["volumes"]
    assert tls["depends_on"]["certs"] == {"condition": "service_completed_successfully"}
    command = services["certs"]["command"]
    assert "-keyout /certs/privkey.pem" in command
    assert "-out /certs/fullchain.pem" in command
    recipe = (DEPLOY / "nginx" / "fluxlit-tls.conf").read_text()
    assert "/etc/ssl/fluxlit/fullchain.pem" in recipe
    assert "/etc/ssl/fluxlit/privkey.pem" in recipe


def test_smoke_test_sh_with_no_arguments_checks_the_default_site() -> None:
    text = (SMOKE_KIT / "smoke-test.sh").read_text()
    assert 'BASE_URL="${1:-${BASE_URL:-http://127.0.0.1:8080}}"' in text


def test_run_all_proxy_smokes_checks_every_published_site() -> None:
    text = (SMOKE_KIT / "run-all-proxy-smokes.sh").read_text()
    for url in ("http://127.0.0.1:8080", "http://127.0.0.1:8081", "http://127.0.0.1:8083", "https://127.0.0.1:8444"):
        assert url in text


def test_kubernetes_scrapes_metrics_on_their_own_port_which_the_service_does_not_expose() -> None:
    from fluxlit.config.parsers import bind_port
    from fluxlit.config.settings import DEFAULTS

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
