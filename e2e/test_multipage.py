"""The multipage example in a real browser: sidebar navigation, ?page= deep links, and a file upload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._live import LiveServer

pytestmark = pytest.mark.e2e

MULTIPAGE = Path(__file__).resolve().parent.parent / "examples" / "multipage" / "app.py"


# Server fixtures come before `page` in test signatures: the browser then closes first, and the server's
# graceful stop does not wait on the tab's idle keep-alive connections.
@pytest.fixture
def multipage_server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(tmp_path, target=f"{MULTIPAGE}:app").running() as live:
        yield live


def test_sidebar_navigation_keeps_session_state_between_pages(multipage_server: LiveServer, page: Any) -> None:
    page.goto(multipage_server.base + "/")
    page.get_by_role("heading", name="Notes").wait_for()
    nav = page.get_by_test_id("stSidebarNav")
    nav.get_by_text("Profile").click()
    page.get_by_role("heading", name="Profile").wait_for()
    assert page.url.endswith("/profile")
    page.get_by_label("Your name").fill("Ada")
    page.get_by_label("Your name").press("Enter")
    page.get_by_text("Hello, Ada!").wait_for()

    nav.get_by_text("Notes").click()
    page.get_by_role("heading", name="Notes").wait_for()
    nav.get_by_text("Profile").click()
    page.get_by_text("Hello, Ada!").wait_for()


def test_a_page_query_parameter_opens_that_page_with_the_other_parameters(
    multipage_server: LiveServer, page: Any
) -> None:
    page.goto(multipage_server.base + "/?page=profile&greeting=Welcome")
    page.get_by_role("heading", name="Profile").wait_for()
    page.get_by_text("Welcome, stranger!").wait_for()
    assert "greeting=Welcome" in page.url


def test_a_file_upload_passes_the_gateway_with_xsrf_protection_on(multipage_server: LiveServer, page: Any) -> None:
    page.goto(multipage_server.base + "/upload")
    page.get_by_role("heading", name="Upload").wait_for()
    page.locator("input[type=file]").set_input_files(
        files=[{"name": "data.bin", "mimeType": "application/octet-stream", "buffer": b"x" * 123_457}]
    )
    page.get_by_text("Uploaded data.bin: 123457 bytes").wait_for()

    # The same upload without the browser's XSRF cookie and token is refused: the protection is really on.
    refused = httpx.put(
        multipage_server.base + "/_stcore/upload_file/some-session/some-file",
        files={"file": ("data.bin", b"x")},
        timeout=10,
    )
    assert refused.status_code == 403
