"""Two replicas behind nginx (deploy/nginx/fluxlit-replicas.conf): a session stays on one, API calls spread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._edge import Nginx
from tests._live import LiveServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.external("nginx"),
]


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    a = LiveServer(tmp_path / "a", "--replica-id", "replica-a")
    b = LiveServer(tmp_path / "b", "--replica-id", "replica-b")
    for live in (a, b):
        live.workdir.mkdir()
        live.start()
    try:
        a.wait_ready()
        b.wait_ready()
        yield a, b
    finally:
        a.stop()
        b.stop()


def test_session_sticks_to_one_replica_while_api_calls_spread(
    tmp_path: Path, replicas: tuple[LiveServer, LiveServer]
) -> None:
    from websockets.sync.client import connect

    a, b = replicas
    edge = Nginx(
        tmp_path,
        "fluxlit-replicas.conf",
        a.port,
        site_replacements={"127.0.0.1:8001": f"127.0.0.1:{a.port}", "127.0.0.1:8002": f"127.0.0.1:{b.port}"},
    ).start()
    try:
        with httpx.Client(base_url=edge.base, timeout=10) as browser:
            shell = browser.get("/")
            pinned = shell.headers["x-fluxlit-replica"]
            assert browser.cookies["fluxlit_replica"] == pinned
            for _ in range(10):
                assert browser.get("/_stcore/health").headers["x-fluxlit-replica"] == pinned
            cookie = f"fluxlit_replica={pinned}"
            with connect(
                f"ws://127.0.0.1:{edge.port}/_stcore/stream",
                subprotocols=["streamlit"],
                additional_headers={"Cookie": cookie},
                open_timeout=10,
            ) as ws:
                assert ws.response.headers["x-fluxlit-replica"] == pinned
            seen = {browser.get("/api/smoke").headers["x-fluxlit-replica"] for _ in range(20)}
        assert seen == {"replica-a", "replica-b"}
    finally:
        edge.stop()
