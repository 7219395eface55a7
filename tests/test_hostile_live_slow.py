"""Issue 15's probe, byte for byte, against a real `fluxlit serve` with a Streamlit 1.67 child.

Where the bytes matter: a header block sent at once or in pieces, an `HTTP/2.0` request line, a proxied upload
trickled into Streamlit, a URL at and over the limit, encoded slashes, and the metrics bind.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._live import XSRF_COOKIE as COOKIE
from tests._live import LiveServer, free_port
from tests.test_hostile_http import head, header_block_of, send_in_pieces

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(Path(tmp_path_factory.mktemp("hostile"))).running() as server:
        yield server


def ask(live: LiveServer, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes (or `timeout`)."""
    answer = b""
    with socket.create_connection(("127.0.0.1", live.port), timeout=timeout) as sock:
        sock.sendall(data)
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize("piece", [1 << 20, 1024], ids=["one-write", "1KiB-pieces"])
@pytest.mark.parametrize(("total", "status"), [(65536, 200), (65536 + 2048, 431)])
def test_a_64_KiB_header_block_is_judged_the_same_however_it_arrives(
    live: LiveServer, piece: int, total: int, status: int
) -> None:
    data = header_block_of(total).replace(b"GET /api/t ", b"GET /api/healthz ")
    reply = send_in_pieces(live.port, data, piece)
    assert reply.status == status


@pytest.mark.parametrize("target", ["/api/healthz", "/"])
def test_an_http_2_0_request_line_over_http_1_gets_505(live: LiveServer, target: str) -> None:
    answer = ask(live, head(f"GET {target} HTTP/2.0", f"Host: 127.0.0.1:{live.port}"))
    assert status_of(answer) == 505
    assert b"\r\nconnection: close\r\n" in answer.lower()


@pytest.mark.parametrize("target", ["/api%2Fhealthz", "/api%2fsmoke", "/api%5Csmoke", "/_stcore%2Fhealth"])
def test_encoded_slashes_get_400_from_the_gateway(live: LiveServer, target: str) -> None:
    answer = ask(live, head(f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{live.port}", "Connection: close"))
    assert status_of(answer) == 400
    assert b"encoded '/'" in answer


def test_a_100_KiB_url_gets_414_and_an_8_KiB_one_is_logged_short(live: LiveServer) -> None:
    host = f"Host: 127.0.0.1:{live.port}"
    assert status_of(ask(live, head("GET /" + "a" * 100 * 1024 + " HTTP/1.1", host, "Connection: close"))) == 414
    marker = uuid.uuid4().hex
    long_path = f"/{marker}" + "b" * (8000 - len(marker))
    served = ask(live, head(f"GET {long_path} HTTP/1.1", host, "Connection: close"))
    assert status_of(served) < 500
    deadline = time.monotonic() + 10
    line = None
    while line is None and time.monotonic() < deadline:
        line = next((text for text in live.log().splitlines() if marker in text), None)
        time.sleep(0.05)
    assert line is not None
    assert len(line) < 3000
    assert json.loads(line)["path"].endswith(f"...[{len(long_path) - 2048} more chars]")


def test_a_proxied_upload_trickled_1_byte_every_4_s_gets_408(
    live: LiveServer,
    session_id: str,
    token: str,
) -> None:
    """Issue 15: each byte beat the per-read deadline, so Streamlit's upload handler held the connection forever.
    Under the default minimum rate (1 KiB/s, 10 s of lag) it is cut at about 10 s."""
    url = f"/_stcore/upload_file/{session_id}/{uuid.uuid4().hex}"
    boundary = "fluxlitboundary"
    preamble = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    request = head(
        f"PUT {url} HTTP/1.1",
        f"Host: 127.0.0.1:{live.port}",
        f"Cookie: {COOKIE}={token}",
        f"X-Xsrftoken: {token}",
        f"Content-Type: multipart/form-data; boundary={boundary}",
        "Content-Length: 100000",
    )
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(request + preamble)
        started = time.monotonic()
        answer = b""
        while time.monotonic() - started < 40:  # unfixed, nothing ends this but the loop
            try:
                sock.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                break
            sock.settimeout(4.0)
            with contextlib.suppress(TimeoutError):
                chunk = sock.recv(65536)
                answer += chunk
                if not chunk:
                    break
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"too slowly" in answer
    assert 8.0 <= took < 20.0


def test_the_metrics_bind_serves_metrics_alone_and_the_public_port_404s_them(tmp_path: Path) -> None:
    metrics_port = free_port()
    with LiveServer(tmp_path, "--metrics-bind", f"127.0.0.1:{metrics_port}").running() as server:
        metrics_base = f"http://127.0.0.1:{metrics_port}"
        scrape = httpx.get(f"{metrics_base}/__fluxlit/metrics", timeout=10)
        assert scrape.status_code == 200
        assert "fluxlit_gateway_requests_total" in scrape.text
        assert httpx.get(f"{metrics_base}/__fluxlit/%6detrics", timeout=10).status_code == 200
        assert httpx.get(f"{metrics_base}/api/healthz", timeout=10).status_code == 404
        assert httpx.get(f"{metrics_base}/", timeout=10).status_code == 404
        assert server.get("/__fluxlit/metrics").status_code == 404  # not even to loopback, on the public port
        assert server.get("/api/healthz").status_code == 200
