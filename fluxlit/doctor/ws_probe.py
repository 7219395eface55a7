"""A blocking WebSocket client over a raw socket and wsproto: did the server answer 101 (and with what), and how
long until it pings an idle connection."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping, RejectConnection, RejectData, Request
from wsproto.utilities import RemoteProtocolError

READ_SIZE = 65536
# A handshake answer is one header block and maybe a short body: a bound on reads, besides the deadline.
MAX_READS = 256


@dataclass(frozen=True)
class HandshakeResult:
    """What the server said: `status` 101 when accepted, the refusal's status, or None with `error` set."""

    status: int | None
    subprotocol: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""

    @property
    def accepted(self) -> bool:
        return self.status == 101


@dataclass(frozen=True)
class PingWait:
    """How long an idle WebSocket waited for the server's first ping (None: none came); `error` if it never opened."""

    seconds: float | None
    error: str = ""


def websocket_handshake(
    url: str, *, subprotocols: tuple[str, ...] = ("streamlit",), timeout: float = 5.0
) -> HandshakeResult:
    """Open `url` (ws:// or wss://), read the handshake answer, then close politely; never raises for I/O."""
    result, _ = _open_and(url, subprotocols, timeout, lambda sock, ws: None)
    return result


def first_ping(
    url: str, *, within: float, subprotocols: tuple[str, ...] = ("streamlit",), timeout: float = 5.0
) -> PingWait:
    """Open `url`, send nothing, and time the server's first ping, waiting at most `within` seconds."""
    result, waited = _open_and(url, subprotocols, timeout, lambda sock, ws: _wait_for_ping(sock, ws, within))
    if not result.accepted:
        return PingWait(None, error=result.error or f"the handshake was answered {result.status}")
    return PingWait(waited)


def _open_and(
    url: str,
    subprotocols: tuple[str, ...],
    timeout: float,
    then: Callable[[socket.socket, WSConnection], float | None],
) -> tuple[HandshakeResult, float | None]:
    """Handshake; once accepted, run `then` on the open connection before closing it politely."""
    parts = urlsplit(url)
    secure = parts.scheme in ("wss", "https")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as error:
        return HandshakeResult(None, error=f"cannot connect to {host}:{port}: {error.strerror or error}"), None
    try:
        if secure:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        return _exchange(sock, parts.netloc, target, subprotocols, timeout, then)
    except (OSError, ssl.SSLError) as error:
        return HandshakeResult(None, error=f"{type(error).__name__}: {error}"), None
    finally:
        sock.close()


def _exchange(
    sock: socket.socket,
    netloc: str,
    target: str,
    subprotocols: tuple[str, ...],
    timeout: float,
    then: Callable[[socket.socket, WSConnection], float | None],
) -> tuple[HandshakeResult, float | None]:
    ws = WSConnection(ConnectionType.CLIENT)
    sock.sendall(ws.send(Request(host=netloc, target=target, subprotocols=list(subprotocols))))
    deadline = time.monotonic() + timeout
    refusal: RejectConnection | None = None
    body = bytearray()
    for _ in range(MAX_READS):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            data = sock.recv(READ_SIZE)
        except TimeoutError:
            break
        try:
            ws.receive_data(data or None)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    outcome = then(sock, ws)
                    _close(sock, ws)
                    headers = _headers(event.extra_headers)
                    return HandshakeResult(101, subprotocol=event.subprotocol, headers=headers), outcome
                if isinstance(event, RejectConnection):
                    refusal = event
                    if not event.has_body:
                        return _refused(refusal, body), None
                elif isinstance(event, RejectData):
                    body += event.data
                    if event.body_finished and refusal is not None:
                        return _refused(refusal, body), None
        except RemoteProtocolError as error:
            return HandshakeResult(None, error=f"invalid handshake answer: {error}"), None
        if not data:  # pragma: no cover - wsproto raises on end of input before a complete answer, above
            break
    if refusal is not None:
        return _refused(refusal, body), None
    late = HandshakeResult(None, error=f"no handshake answer within {timeout:g} s (connection closed or timed out)")
    return late, None


def _wait_for_ping(sock: socket.socket, ws: WSConnection, within: float) -> float | None:
    """Seconds until the server pinged (answered, as a browser does), or None: no ping in time, or it closed."""
    started = time.monotonic()
    while (verdict := _answer_ping(sock, ws)) is None:  # bounded by `within`: each read gets the time left
        remaining = started + within - time.monotonic()
        data = _receive(sock, remaining) if remaining > 0 else b""
        if not data:
            return None
        ws.receive_data(data)
    return time.monotonic() - started if verdict else None


def _answer_ping(sock: socket.socket, ws: WSConnection) -> bool | None:
    """True once a ping came (and was answered), False when the server closed, None while neither."""
    for event in ws.events():
        if isinstance(event, Ping):
            sock.sendall(ws.send(event.response()))
            return True
        if isinstance(event, CloseConnection):
            return False
    return None


def _receive(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    try:
        return sock.recv(READ_SIZE)
    except TimeoutError:
        return b""


def _refused(event: RejectConnection, body: bytearray) -> HandshakeResult:
    return HandshakeResult(event.status_code, headers=_headers(event.headers), body=bytes(body[:2048]))


def _headers(pairs: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in pairs}


def _close(sock: socket.socket, ws: WSConnection) -> None:
    """Say goodbye with 1000 so the server logs a normal close, not a dropped connection."""
    try:
        sock.sendall(ws.send(CloseConnection(code=1000, reason="fluxlit doctor")))
        sock.settimeout(1.0)
        sock.recv(READ_SIZE)
    except OSError:
        pass
