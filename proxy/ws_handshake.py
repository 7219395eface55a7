"""Opening the upstream leg of a WebSocket: connect, wsproto client handshake, accepted or rejected."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import anyio.abc
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.utilities import RemoteProtocolError

from .asgi import Headers
from .config import ProxyConfig, Upstream
from .connection import RECEIVE_SIZE, STREAM_GONE
from .failures import Failure, UpstreamError
from .transport import open_stream

# A rejection body is relayed to the client for its error page; anything longer is cut.
MAX_REJECTION_BODY = 64 * 1024


@dataclass
class Accepted:
    stream: anyio.abc.ByteStream
    ws: WSConnection
    subprotocol: str | None
    headers: Headers


@dataclass(frozen=True)
class Rejected:
    status: int
    headers: Headers
    body: bytes


def upstream_host_value(client_host: bytes | None, upstream: Upstream) -> str:
    """The Host for wsproto, which encodes it with IDNA: the browser's when that survives unchanged."""
    if client_host is not None:
        text = client_host.decode("latin-1")
        try:
            if text.encode("idna") == client_host:
                return text
        except UnicodeError:
            pass
    if upstream.unix_path is not None:
        return "localhost"
    return f"{upstream.host}:{upstream.port}"


async def open_websocket(upstream: Upstream, request: Request, config: ProxyConfig) -> Accepted | Rejected:
    """Connect and handshake within connect_timeout + ws_open_timeout, or raise UpstreamError."""
    stream = await open_stream(upstream, config.connect_timeout)
    try:
        result: Accepted | Rejected | None = None
        with anyio.move_on_after(config.ws_open_timeout):
            result = await _handshake(stream, request)
        if result is None:
            raise UpstreamError(Failure.READ_TIMEOUT, f"no handshake answer within {config.ws_open_timeout:g}s")
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise
    if isinstance(result, Rejected):
        await anyio.aclose_forcefully(stream)
    return result


async def _handshake(stream: anyio.abc.ByteStream, request: Request) -> Accepted | Rejected:
    ws = WSConnection(ConnectionType.CLIENT)
    try:
        await stream.send(ws.send(request))
    except STREAM_GONE as exc:
        raise UpstreamError(Failure.RESET, f"while sending the handshake: {exc!r}") from None
    rejection: RejectConnection | None = None
    body = bytearray()
    while True:
        try:
            data: bytes | None = await stream.receive(RECEIVE_SIZE)
        except anyio.EndOfStream:
            data = None
        except STREAM_GONE as exc:
            raise UpstreamError(Failure.RESET, f"during the handshake: {exc!r}") from None
        try:
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    return Accepted(stream, ws, event.subprotocol, list(event.extra_headers))
                if isinstance(event, RejectConnection):
                    rejection = event
                    if not event.has_body:
                        return Rejected(event.status_code, list(event.headers), b"")
                elif isinstance(event, RejectData) and rejection is not None:
                    body += event.data[: MAX_REJECTION_BODY - len(body)]
                    if event.body_finished:
                        return Rejected(rejection.status_code, list(rejection.headers), bytes(body))
        except RemoteProtocolError as exc:
            failure = Failure.RESET if data is None else Failure.PROTOCOL
            raise UpstreamError(failure, f"handshake: {exc}") from None
        if data is None:
            if rejection is not None:
                return Rejected(rejection.status_code, list(rejection.headers), bytes(body))
            raise UpstreamError(Failure.RESET, "closed during the handshake")
