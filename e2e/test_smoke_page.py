"""The smoke page in a real browser, through `fluxlit serve`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests._live import LiveServer

pytestmark = pytest.mark.e2e


def test_smoke_page_renders_api_data_and_round_trips_a_click(
    page: Any, smoke_server: LiveServer, artifacts: Path
) -> None:
    page.goto(smoke_server.base + "/")
    page.get_by_text("FluxLit Smoke").first.wait_for()
    page.get_by_text("fluxlit_smoke_ok").first.wait_for()
    page.screenshot(path=str(artifacts / "smoke_page.png"), full_page=True)
    page.get_by_role("button", name="Ping").click()
    page.get_by_text("pong").first.wait_for()
