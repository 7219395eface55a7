"""The smoke page served under a sub-path (--root-path /apps/demo), as behind a path-routing proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._live import LiveServer

pytestmark = pytest.mark.e2e

MOUNT = "/apps/demo"


@pytest.fixture
def mounted_server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(tmp_path, "--root-path", MOUNT).running() as live:
        yield live


def test_smoke_page_renders_under_a_root_path(mounted_server: LiveServer, page: Any) -> None:
    assert mounted_server.get(MOUNT + "/api/smoke").json()["marker"] == "fluxlit_smoke_ok"
    page.goto(mounted_server.base + MOUNT + "/")
    page.get_by_text("FluxLit Smoke").first.wait_for()
    page.get_by_text("fluxlit_smoke_ok").first.wait_for()
    page.get_by_role("button", name="Ping").click()
    page.get_by_text("pong").first.wait_for()
    assert page.url.startswith(mounted_server.base + MOUNT + "/")
