"""`fluxlit doctor --url` against a real `fluxlit serve`, directly, under a sub-path, and behind a bad proxy."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fluxlit.doctor.registry import doctor
from tests._live import SMOKE_APP, LiveServer
from tests._tcp import LoopbackTcpServer

pytestmark = pytest.mark.slow
NGINX_UPGRADE = 'proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";'
HEAD_LIMIT = 64 * 1024


class UpgradeDroppingProxy(LoopbackTcpServer):
    """A reverse proxy configured like nginx without the WebSocket lines: plain HTTP passes, the upgrade does not.

    mode "strip": forwards the WebSocket request with Upgrade/Connection removed (nginx's default behaviour);
    mode "refuse": answers the WebSocket request 400 itself.
    """

    def __init__(self, upstream_port: int, mode: str) -> None:
        super().__init__()
        self.upstream_port = upstream_port
        self.mode = mode

    def handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < HEAD_LIMIT:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            upgrade = any(line.lower().replace(b" ", b"") == b"upgrade:websocket" for line in lines[1:])
            if upgrade and self.mode == "refuse":
                conn.sendall(
                    b"HTTP/1.1 400 Bad Request\r\nServer: fake-nginx\r\nContent-Length: 11\r\n"
                    b"Connection: close\r\n\r\nBad Request"
                )
                return
            # Hop-by-hop headers end here, as in nginx; every request goes upstream on its own connection.
            kept = [line for line in lines[1:] if not line.lower().startswith((b"upgrade:", b"connection:"))]
            request = b"\r\n".join([lines[0], *kept, b"Connection: close", b"", b""])
            with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10) as upstream:
                upstream.sendall(request)
                for _ in range(10_000):
                    data = upstream.recv(65536)
                    if not data:
                        break
                    conn.sendall(data)


def run_doctor(url: str, port: int, *extra_env: tuple[str, str]) -> tuple[int, dict[str, Any]]:
    env = {"FLUXLIT_GATEWAY_PORT": str(port), **dict(extra_env)}
    result = CliRunner().invoke(doctor, [f"{SMOKE_APP}:app", "--url", url, "--json"], env=env)
    return result.exit_code, json.loads(result.output)


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["status"] for check in report["checks"]}


def verdict(report: dict[str, Any], name: str) -> dict[str, str]:
    return next(check for check in report["checks"] if check["name"] == name)


@pytest.fixture(autouse=True)
def in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)


def test_healthy_instance_passes_every_check(live: LiveServer) -> None:
    code, report = run_doctor(live.base, live.port)
    assert set(statuses(report).values()) == {"PASS"}, report
    assert code == 0
    assert "in use by the instance at --url" in verdict(report, "port")["detail"]
    assert "subprotocol streamlit" in verdict(report, "websocket")["detail"]


def test_instance_under_a_sub_path_passes_with_its_prefix(tmp_path: Path) -> None:
    with LiveServer(tmp_path, "--root-path", "/apps/demo").running() as server:
        code, report = run_doctor(server.base + "/apps/demo", server.port, ("FLUXLIT_ROOT_PATH", "/apps/demo"))
    assert set(statuses(report).values()) == {"PASS"}, report
    assert code == 0


def test_proxy_that_strips_upgrade_is_named_with_the_nginx_fix(live: LiveServer) -> None:
    with UpgradeDroppingProxy(live.port, "strip") as proxy:
        code, report = run_doctor(f"http://127.0.0.1:{proxy.port}", live.port)
    assert statuses(report)["healthz"] == "PASS"
    check = verdict(report, "websocket")
    assert check["status"] == "FAIL"
    assert "reached it without 'Upgrade: websocket'" in check["detail"]
    assert "the proxy in front drops the Upgrade/Connection headers" in check["detail"]
    assert NGINX_UPGRADE in check["fix"]
    assert code == 1


def test_proxy_that_refuses_upgrade_is_named_as_the_hop(live: LiveServer) -> None:
    with UpgradeDroppingProxy(live.port, "refuse") as proxy:
        code, report = run_doctor(f"http://127.0.0.1:{proxy.port}", live.port)
    check = verdict(report, "websocket")
    assert check["status"] == "FAIL"
    assert "the proxy in front answered 400 itself" in check["detail"]
    assert NGINX_UPGRADE in check["fix"]
    assert code == 1


def test_python_m_fluxlit_doctor_runs_against_a_live_server(live: LiveServer, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fluxlit", "doctor", f"{SMOKE_APP}:app", "--url", live.base],
        env={"PATH": "/usr/bin:/bin", "FLUXLIT_GATEWAY_PORT": str(live.port), "HOME": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS  websocket:" in result.stdout


def test_wrong_sub_path_says_fluxlit_answered_elsewhere(live: LiveServer) -> None:
    code, report = run_doctor(live.base + "/apps/wrong", live.port)
    check = verdict(report, "healthz")
    assert (code, check["status"]) == (1, "FAIL")
    assert "FluxLit answered (X-Request-ID)" in check["detail"]
    assert "--root-path" in check["fix"]


def test_the_keepalive_check_waits_for_a_real_ping_below_the_idle_timeout(tmp_path: Path) -> None:
    with LiveServer(tmp_path, "--ws-ping-interval", "1").running() as server:
        env = {"FLUXLIT_GATEWAY_PORT": str(server.port), "FLUXLIT_WS_PING_INTERVAL_S": "1"}
        args = [f"{SMOKE_APP}:app", "--url", server.base, "--lb-idle-timeout", "60", "--json"]
        result = CliRunner().invoke(doctor, args, env=env)
    check = verdict(json.loads(result.output), "websocket_keepalive")
    assert check["status"] == "PASS", check
    assert "pinged after" in check["detail"]
    assert "below the load balancer's idle timeout 60 s" in check["detail"]
