"""Streamlit's XSRF protection stays on behind the gateway: a cross-site upload is refused, a same-site one accepted.

Streamlit 1.67 takes uploads as ``PUT {base}/_stcore/upload_file/<session_id>/<file_id>`` and, with XSRF on, wants
the ``_streamlit_xsrf`` cookie and an ``X-Xsrftoken`` header carrying the same token (double submit); the session
must be live. A browser on another site sends the cookie but cannot read it to set the header.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests._live import XSRF_COOKIE as COOKIE
from tests._live import LiveServer, xsrf_token

pytestmark = pytest.mark.slow


def upload(live: LiveServer, session_id: str, headers: dict[str, str], method: str = "PUT") -> httpx.Response:
    url = f"{live.base}/_stcore/upload_file/{session_id}/{uuid.uuid4().hex}"
    files: Any = {"file": ("hello.txt", b"hello from the test", "text/plain")}
    return httpx.request(method, url, files=files, headers=headers, timeout=10)


def test_the_xsrf_cookie_reaches_the_browser_through_the_gateway(live: LiveServer) -> None:
    set_cookie = live.get("/_stcore/health").headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE}=")
    assert "samesite=lax" in set_cookie.lower()


def test_upload_with_the_cookie_but_no_header_is_refused(live: LiveServer, session_id: str, token: str) -> None:
    """The cross-site case: the browser attaches the cookie, the attacker's page cannot set the header."""
    assert upload(live, session_id, {"Cookie": f"{COOKIE}={token}"}).status_code == 403


def test_upload_with_neither_cookie_nor_header_is_refused(live: LiveServer, session_id: str) -> None:
    assert upload(live, session_id, {}).status_code == 403


def test_upload_with_the_header_but_no_cookie_is_refused(live: LiveServer, session_id: str, token: str) -> None:
    assert upload(live, session_id, {"X-Xsrftoken": token}).status_code == 403


def test_upload_with_a_mismatched_pair_is_refused(live: LiveServer, session_id: str, token: str) -> None:
    other = xsrf_token(live)
    response = upload(live, session_id, {"Cookie": f"{COOKIE}={token}", "X-Xsrftoken": other})
    assert response.status_code == 403


def test_upload_with_a_matching_pair_from_a_real_session_is_accepted(
    live: LiveServer, session_id: str, token: str
) -> None:
    response = upload(live, session_id, {"Cookie": f"{COOKIE}={token}", "X-Xsrftoken": token, "Origin": live.base})
    assert response.status_code == 204, response.text


def test_upload_with_a_valid_pair_for_an_unknown_session_is_refused(live: LiveServer, token: str) -> None:
    response = upload(live, "no-such-session", {"Cookie": f"{COOKIE}={token}", "X-Xsrftoken": token})
    assert response.status_code == 400


def test_post_is_not_an_upload_method(live: LiveServer, session_id: str) -> None:
    assert upload(live, session_id, {}, method="POST").status_code == 405


def test_preflight_from_another_site_is_not_granted_its_origin(live: LiveServer, session_id: str) -> None:
    response = httpx.options(
        f"{live.base}/_stcore/upload_file/{session_id}/x",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"},
        timeout=10,
    )
    assert response.headers.get("access-control-allow-origin") != "https://evil.example"


def test_websocket_from_another_site_is_refused(live: LiveServer, token: str) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as refused:
        connect(
            f"ws://127.0.0.1:{live.port}/_stcore/stream",
            subprotocols=["streamlit", token],
            additional_headers={"Cookie": f"{COOKIE}={token}", "Origin": "https://evil.example"},
            open_timeout=10,
        )
    assert refused.value.response.status_code == 403
