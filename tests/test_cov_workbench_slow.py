"""`fluxlit workbench` as a user runs it inside an IDE: where it answers is printed, SIGTERM stops it with 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._live import LiveServer

pytestmark = pytest.mark.slow


def test_workbench_prints_local_and_proxied_urls_serves_and_stops_cleanly(tmp_path: Path) -> None:
    env = {"RS_SERVER_URL": "https://workbench.example/", "RS_SESSION_URL": "/s/abc123/"}
    live = LiveServer(tmp_path, env=env)
    live.argv[live.argv.index("serve")] = "workbench"
    live.start()
    try:
        live.wait_ready()
        assert live.get("/api/smoke").json()["marker"] == "fluxlit_smoke_ok"
    finally:
        code = live.stop()
    assert code == 0, live.log()[-4000:]
    log = live.log()
    assert f"Local:   http://127.0.0.1:{live.port}/" in log
    assert f"Proxied: https://workbench.example/s/abc123/p/<token for port {live.port}>/" in log
