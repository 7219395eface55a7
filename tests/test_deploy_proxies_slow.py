"""The nginx and Caddy recipes in deploy/, run for real in front of `fluxlit serve`, pass the proxy smoke kit."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._edge import DEPLOY, NGINX_SITES, Caddy, Nginx
from tests._live import LiveServer

pytestmark = pytest.mark.slow
SMOKE = DEPLOY / "proxy-smoke" / "smoke-test.sh"
needs_nginx = pytest.mark.external("nginx")
needs_caddy = pytest.mark.external("caddy")


def smoke(base: str, prefix: str = "", **env: str) -> None:
    result = subprocess.run(
        ["bash", str(SMOKE), base, prefix], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def fluxlit(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path, *getattr(request, "param", ())).start()
    try:
        live.wait_ready()
        yield live
    finally:
        live.stop()


@needs_nginx
@pytest.mark.parametrize(
    ("site", "fluxlit", "prefix"),
    NGINX_SITES,
    indirect=["fluxlit"],
)
def test_nginx_recipe_passes_the_smoke_kit(tmp_path: Path, fluxlit: LiveServer, site: str, prefix: str) -> None:
    edge = Nginx(tmp_path, site, fluxlit.port).start()
    try:
        smoke(edge.base, prefix, CURL_INSECURE="1")
    finally:
        edge.stop()


@needs_nginx
def test_nginx_limits_bodies_at_the_edge_and_is_a_trusted_forwarder(tmp_path: Path, fluxlit: LiveServer) -> None:
    edge = Nginx(tmp_path, "fluxlit-tls.conf", fluxlit.port, body_limit="1k").start()
    try:
        too_big = httpx.post(f"{edge.base}/_stcore/upload", content=b"x" * 4096, verify=False, timeout=10)
        assert too_big.status_code == 413
        assert "nginx" in too_big.text
        via_edge = httpx.get(f"{edge.base}/api/whoami", verify=False, timeout=10).json()
        assert via_edge == {"client": "127.0.0.1", "scheme": "https"}  # nginx on 127.0.0.1 is trusted by default
        rid = httpx.get(f"{edge.base}/api/healthz", headers={"X-Request-ID": "edge-1"}, verify=False, timeout=10)
        assert rid.headers["x-request-id"] == "edge-1"
    finally:
        edge.stop()


@pytest.mark.parametrize("fluxlit", [("--forwarded-allow-ips", "10.9.9.9")], indirect=True)
def test_forwarded_headers_from_an_untrusted_peer_are_ignored(fluxlit: LiveServer) -> None:
    forged = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}
    assert fluxlit.get("/api/whoami", headers=forged).json() == {"client": "127.0.0.1", "scheme": "http"}


@needs_caddy
def test_caddy_recipe_passes_the_smoke_kit(tmp_path: Path, fluxlit: LiveServer) -> None:
    edge = Caddy(tmp_path, fluxlit.port).start()
    try:
        smoke(edge.base)
    finally:
        edge.stop()
