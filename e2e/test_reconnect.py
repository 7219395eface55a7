"""Killing the Streamlit child: the open page shows Streamlit's reconnect state, then works again by itself."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from tests._live import LiveServer, pid_alive

pytestmark = pytest.mark.e2e


def test_page_reconnects_after_the_supervisor_restarts_streamlit(smoke_server: LiveServer, page: Any) -> None:
    page.goto(smoke_server.base + "/")
    page.get_by_text("fluxlit_smoke_ok").first.wait_for()
    old_pid = smoke_server.child_pid()

    os.kill(old_pid, signal.SIGKILL)
    status = page.get_by_test_id("stStatusWidget")
    status.get_by_text("Connecting").wait_for(timeout=15_000)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and smoke_server.state().get("pid") in (old_pid, None):
        time.sleep(0.1)
    assert smoke_server.child_pid() != old_pid
    assert not pid_alive(old_pid)

    # No reload: the same page object talks to the new Streamlit over a fresh WebSocket.
    page.get_by_role("button", name="Ping").click(timeout=60_000)
    page.get_by_text("pong").first.wait_for(timeout=30_000)
