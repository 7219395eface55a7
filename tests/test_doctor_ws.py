"""doctor's WebSocket handshake against servers that misbehave: every outcome is a result, never an exception."""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import struct
import threading
from collections.abc import Callable, Generator
from contextlib import contextmanager

import pytest

from fluxlit.doctor import ws_probe as doctor_ws
from fluxlit.doctor.ws_probe import HandshakeResult, websocket_handshake

Answer = Callable[[socket.socket, bytes], None]


@contextmanager
def one_shot_server(answer: Answer, *, read_head: bool = True) -> Generator[int, None, None]:
    """A TCP server on 127.0.0.1 that reads one request head (unless told not to), then does `answer`."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            head = b""
            while read_head and b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            answer(conn, head)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        thread.join(timeout=5)
        listener.close()


def handshake(
    answer: Answer, *, path: str = "/", timeout: float = 5.0, scheme: str = "ws", read_head: bool = True
) -> HandshakeResult:
    """What doctor's handshake to `path` makes of a server that answers its one request with `answer`."""
    with one_shot_server(answer, read_head=read_head) as port:
        return websocket_handshake(f"{scheme}://127.0.0.1:{port}{path}", timeout=timeout)


def reply(data: bytes, *, then_wait: float = 0.0) -> Answer:
    done = threading.Event()

    def answer(conn: socket.socket, head: bytes) -> None:
        conn.sendall(data)
        done.wait(then_wait)

    return answer


def test_a_refusal_without_a_body_is_reported_at_once() -> None:
    result = handshake(
        reply(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nX-Why: origin\r\n\r\n"), path="/_stcore/stream"
    )
    assert (result.status, result.headers["x-why"], result.body, result.accepted) == (403, "origin", b"", False)


def test_a_refusal_whose_body_never_ends_is_reported_with_what_came() -> None:
    answer = reply(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 100\r\n\r\npartial", then_wait=2.0)
    result = handshake(answer, timeout=0.5)
    assert (result.status, result.body) == (502, b"partial")


def test_a_garbled_answer_is_an_invalid_handshake() -> None:
    result = handshake(reply(b"NONSENSE\r\n\r\n"))
    assert result.status is None
    assert result.error.startswith("invalid handshake answer: ")


def test_a_server_that_closes_without_answering_gives_no_answer() -> None:
    result = handshake(reply(b""))
    assert (result.status, result.error) == (None, "invalid handshake answer: Bad HTTP message")


def test_a_server_that_stays_silent_times_out() -> None:
    result = handshake(reply(b"", then_wait=2.0), timeout=0.3)
    assert (result.status, result.error) == (None, "no handshake answer within 0.3 s (connection closed or timed out)")


def test_wss_against_a_plain_http_server_is_a_tls_error() -> None:
    # The server speaks plain HTTP at once: no TLS handshake can come of it.
    result = handshake(reply(b"HTTP/1.1 400 Bad Request\r\n\r\n"), scheme="wss", read_head=False)
    assert result.status is None
    assert result.error.startswith("SSLError: ")


def test_an_informational_answer_other_than_101_is_a_refusal() -> None:
    result = handshake(reply(b"HTTP/1.1 103 Early Hints\r\nLink: </app.js>; rel=preload\r\n\r\n"))
    assert (result.status, result.headers["link"], result.accepted) == (103, "</app.js>; rel=preload", False)


def accept_then_reset(conn: socket.socket, head: bytes) -> None:
    match = re.search(rb"(?i)sec-websocket-key: *([^\r]+)", head)
    assert match is not None
    accept = base64.b64encode(hashlib.sha1(match.group(1) + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Protocol: streamlit\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset


def test_an_accepted_handshake_whose_connection_then_resets_is_still_accepted() -> None:
    result = handshake(accept_then_reset, path="/_stcore/stream")
    assert (result.status, result.subprotocol, result.accepted) == (101, "streamlit", True)


class _Clock:
    """A monotonic clock that jumps past any deadline after its first `reads_before_jump` readings."""

    def __init__(self, reads_before_jump: int) -> None:
        self.readings = 0
        self.reads_before_jump = reads_before_jump

    def monotonic(self) -> float:
        self.readings += 1
        return 0.0 if self.readings <= self.reads_before_jump else 1000.0


def test_a_refusal_body_outlasting_the_deadline_is_reported_as_far_as_it_came(monkeypatch: pytest.MonkeyPatch) -> None:
    # Readings: the deadline, then the first read's remaining time; the second read finds the deadline passed.
    monkeypatch.setattr(doctor_ws, "time", _Clock(reads_before_jump=2))
    head = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 1000000\r\n\r\nnot all of it"
    result = handshake(reply(head, then_wait=0.5), path="/_stcore/stream", timeout=1)
    assert (result.status, result.body, result.accepted) == (400, b"not all of it", False)
