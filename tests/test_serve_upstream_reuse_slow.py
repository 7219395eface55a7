"""Proxied requests through `fluxlit serve` to a real Streamlit child after pauses and early answers (issue 15).

Streamlit 1.67 serves with uvicorn, which closes a connection idle for 5 s and answers a POST to a page 405
before reading its body: the gateway's pooled connections must neither meet the first nor be desynchronised
by the second.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._live import XSRF_COOKIE, LiveServer, streamlit_session, xsrf_token

pytestmark = pytest.mark.slow

# Longer than uvicorn's 5 s keep-alive, as in the probe.
IDLE_S = 6.5


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(Path(tmp_path_factory.mktemp("reuse"))).running() as server:
        yield server


def upload(live: LiveServer, session_id: str, token: str) -> httpx.Response:
    url = f"{live.base}/_stcore/upload_file/{session_id}/{uuid.uuid4().hex}"
    headers = {"Cookie": f"{XSRF_COOKIE}={token}", "X-Xsrftoken": token, "Origin": live.base}
    files = {"file": ("notes.txt", b"uploaded after a pause\n" * 100, "text/plain")}
    return httpx.put(url, files=files, headers=headers, timeout=10)


def test_a_post_after_six_and_a_half_seconds_of_upstream_idleness_gets_streamlits_405(live: LiveServer) -> None:
    assert httpx.post(live.base + "/", content=b"a=1", timeout=10).status_code == 405  # fills the pool
    time.sleep(IDLE_S)
    response = httpx.post(live.base + "/", content=b"a=1", timeout=10)
    assert response.status_code == 405, response.text


def test_an_upload_after_six_and_a_half_seconds_of_upstream_idleness_gets_204(live: LiveServer) -> None:
    token = xsrf_token(live)
    with streamlit_session(live, token) as session_id:
        first = upload(live, session_id, token)
        assert first.status_code == 204, first.text
        time.sleep(IDLE_S)
        after_pause = upload(live, session_id, token)
        assert after_pause.status_code == 204, after_pause.text


def read_status(client: socket.socket) -> int:
    """The status of one Content-Length response read whole off `client`."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = client.recv(65536)
        assert data, "the gateway closed the connection"
        buffer += data
    head, _, body = buffer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        data = client.recv(65536)
        assert data, "the gateway closed the connection mid-body"
        body += data
    return int(head.split(b" ")[1])


@pytest.mark.parametrize("body", [b"x" * 10, b"x" * 5000])
def test_posts_answered_before_their_body_is_read_never_desynchronise_streamlits_connection(
    live: LiveServer, body: bytes
) -> None:
    """Ten rounds of a chunked POST Streamlit answers 405 before reading it, then another POST, on one client
    connection: every answer is Streamlit's 405, and Streamlit never sees the rest of a body as a request."""
    chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (
        len(body),
        body,
    )
    sized = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    log_before = len(live.log())
    statuses = []
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as client:
        for _ in range(10):
            client.sendall(chunked)
            statuses.append(read_status(client))
            client.sendall(sized)
            statuses.append(read_status(client))
    time.sleep(0.5)  # the child's log lines pass through the gateway's log
    log = live.log()[log_before:]
    assert statuses == [405] * 20
    assert "Invalid HTTP request received" not in log
    assert '"status": 502' not in log
