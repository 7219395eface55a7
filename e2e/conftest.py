"""Browser fixtures: Debian's Chromium driven by Playwright (never `playwright install`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._live import LiveServer

# The external-tool marker (chromium), its skip reasons and the one-line skip summary (tests/_external.py).
pytest_plugins = ["tests._external"]

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).parent / "artifacts"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every browser test needs Debian's Chromium: skipped without it (failed under FLUXLIT_REQUIRE_TOOLS=1)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.external("chromium"))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Playwright's own fixtures (so --tracing and --output work) on Debian's Chromium, never `playwright install`."""
    from tests._external import CHROMIUM  # after pytest_plugins registered it, so its asserts are rewritten

    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture(autouse=True)
def _patient_pages(request: pytest.FixtureRequest) -> None:
    """A 30 s default wait: Streamlit's first render on a loaded 2-core machine can take several seconds."""
    if "page" in request.fixturenames:
        request.getfixturevalue("page").set_default_timeout(30_000)


@pytest.fixture
def smoke_server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(tmp_path).running() as live:
        yield live


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
