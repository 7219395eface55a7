"""The smoke page in a real browser, through `fluxlit serve`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests._live import LiveServer

pytestmark = pytest.mark.e2e


def test_smoke_page_renders_api_data_and_round_trips_a_click(
    smoke_server: LiveServer, page: Any, artifacts: Path
) -> None:
    page.goto(smoke_server.base + "/")
    page.get_by_text("FluxLit Smoke").first.wait_for()
    page.get_by_text("fluxlit_smoke_ok").first.wait_for()
    page.screenshot(path=str(artifacts / "smoke_page.png"), full_page=True)
    page.get_by_role("button", name="Ping").click()
    page.get_by_text("pong").first.wait_for()


def request_ids(live: LiveServer, path: str) -> set[str]:
    lines = [json.loads(line) for line in live.log().splitlines() if line.startswith("{")]
    return {line["request_id"] for line in lines if line.get("path") == path and "request_id" in line}


def test_api_calls_from_a_page_carry_the_sessions_request_id(smoke_server: LiveServer, page: Any) -> None:
    page.goto(smoke_server.base + "/")
    page.get_by_text("fluxlit_smoke_ok").first.wait_for()
    deadline = time.monotonic() + 10  # access lines are flushed by another process: give them a moment
    while time.monotonic() < deadline and not (
        request_ids(smoke_server, "/_stcore/stream") and request_ids(smoke_server, "/api/smoke")
    ):
        time.sleep(0.1)
    stream_ids = request_ids(smoke_server, "/_stcore/stream")
    api_ids = request_ids(smoke_server, "/api/smoke")
    assert stream_ids, "no WebSocket line in the access log"
    assert api_ids, "no /api/smoke line in the access log"
    assert api_ids <= stream_ids  # the page's ApiClient sent the WebSocket handshake's X-Request-ID
