"""Opening the upstream leg of a WebSocket: connect (or take the spare), handshake, accepted or rejected.

Every page load waits on this handshake, so it is written and read here rather than through wsproto's
handshake machinery (which costs ~80 us a handshake, an h11 state machine validating every header twice):
the request is built from headers that h11 already validated on the way in, and a well-formed 101 answer is
split with two regular expressions. Anything else (a rejection with its body, or a 101 shaped unusually) goes
to h11. wsproto takes over for the frames once the upgrade is done.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import anyio.abc
import h11
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import Request
from wsproto.extensions import Extension

from .asgi import Header, Headers
from .config import ProxyConfig, Upstream
from .connection import MAX_HEAD_BYTES, RECEIVE_SIZE, STREAM_GONE
from .failures import Failure, UpstreamError
from .spare import SpareConnection
from .transport import open_stream
from .ws_limits import MessageSizeGuard

# A rejection body is relayed to the client for its error page; anything longer is cut.
MAX_REJECTION_BODY = 64 * 1024
# RFC 6455 section 1.3: the server proves it read the key by hashing it with this GUID.
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# As h11 validates them (RFC 9110 5.1, 5.5): a token; visible characters, inner spaces and tabs, no CTLs.
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_FIELD_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_SWITCHING = re.compile(rb"HTTP/1\.1 101(?: [^\x00-\x08\x0a-\x1f\x7f]*)?")


@dataclass
class Accepted:
    stream: anyio.abc.ByteStream
    ws: Connection
    subprotocol: str | None
    headers: Headers


@dataclass(frozen=True)
class Rejected:
    status: int
    headers: Headers
    body: bytes


def upstream_host_value(client_host: bytes | None, upstream: Upstream) -> str:
    """The Host for the upstream handshake: the browser's when it survives IDNA encoding unchanged."""
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


def new_nonce() -> bytes:
    """A Sec-WebSocket-Key: 16 random bytes, base64-encoded."""
    return base64.b64encode(os.urandom(16))


def accept_token(nonce: bytes) -> bytes:
    """The Sec-WebSocket-Accept a server must answer `nonce` with."""
    return base64.b64encode(hashlib.sha1(nonce + WEBSOCKET_GUID).digest())


def handshake_fields(request: Request, nonce: bytes) -> Headers:
    """The upgrade request's header fields, in wsproto's order, then the request's own extra headers."""
    fields: Headers = [
        (b"Host", request.host.encode("idna")),
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Key", nonce),
        (b"Sec-WebSocket-Version", b"13"),
    ]
    if request.subprotocols:
        fields.append((b"Sec-WebSocket-Protocol", ", ".join(request.subprotocols).encode("ascii")))
    if request.extensions:
        raise ValueError("the proxy offers no WebSocket extensions upstream: build the Request without any")
    return fields + list(request.extra_headers)


def handshake_request(request: Request, nonce: bytes) -> bytes:
    """The bytes of the upgrade request; h11.LocalProtocolError for a target or field h11 would refuse."""
    target = request.target.encode("ascii")
    if not _TARGET.fullmatch(target):
        raise h11.LocalProtocolError(f"invalid request target {target!r}")
    lines = [b"GET " + target + b" HTTP/1.1\r\n"]
    for name, value in handshake_fields(request, nonce):
        if not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            raise h11.LocalProtocolError(f"invalid header field {name!r}: {value!r}")
        lines.append(name + b": " + value + b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def split_switching_head(head: bytes) -> Headers | None:
    """The header fields of a strictly shaped "HTTP/1.1 101" head (lower-cased names, without its final
    blank line); None for anything else, which h11 then parses."""
    lines = head.split(b"\r\n")
    if not _SWITCHING.fullmatch(lines[0]):
        return None
    fields: Headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        value = value.strip(b" \t")
        if not colon or not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            return None
        fields.append((name.lower(), value))
    return fields


def check_switch(fields: Sequence[Header], nonce: bytes, offered: Sequence[str]) -> tuple[str | None, Headers]:
    """Validate a 101 answer as wsproto does; (chosen subprotocol, the other headers) or UpstreamError."""
    upgrade = accept = subprotocol = None
    connection: list[bytes] = []
    extensions: list[bytes] = []
    rest: Headers = []
    for name, value in fields:
        lowered = name.lower()
        if lowered == b"connection":
            connection += [token.strip().lower() for token in value.split(b",")]
        elif lowered == b"upgrade":
            upgrade = value.lower()
        elif lowered == b"sec-websocket-accept":
            accept = value
        elif lowered == b"sec-websocket-protocol":
            subprotocol = value.decode("latin-1")
        elif lowered == b"sec-websocket-extensions":
            extensions += [token.strip() for token in value.split(b",") if token.strip()]
        else:
            rest.append((lowered, value))
    if b"upgrade" not in connection:
        raise UpstreamError(Failure.PROTOCOL, "handshake: missing header, 'Connection: Upgrade'")
    if upgrade != b"websocket":
        raise UpstreamError(Failure.PROTOCOL, "handshake: missing header, 'Upgrade: websocket'")
    if accept != accept_token(nonce):
        raise UpstreamError(Failure.PROTOCOL, "handshake: bad accept token")
    if subprotocol is not None and subprotocol not in offered:
        raise UpstreamError(Failure.PROTOCOL, f"handshake: unrecognized subprotocol {subprotocol}")
    if extensions:
        raise UpstreamError(Failure.PROTOCOL, f"handshake: extension {extensions[0]!r} was never offered")
    return subprotocol, rest


def may_retry_handshake(*, from_spare: bool, failure: Failure, bytes_received: int) -> bool:
    """A spare connection the upstream closed while it waited fails before any answer: retry on a fresh one."""
    return from_spare and failure is Failure.RESET and bytes_received == 0


async def open_websocket(
    upstream: Upstream, request: Request, config: ProxyConfig, spare: SpareConnection | None = None
) -> Accepted | Rejected:
    """Connect (or take the spare) and handshake within connect_timeout + ws_open_timeout, or raise UpstreamError."""
    stream = await spare.take(upstream) if spare is not None else None
    from_spare = stream is not None
    while True:
        if stream is None:
            stream = await open_stream(upstream, config.connect_timeout)
        handshake = UpstreamHandshake(request, config.ws_max_message_bytes)
        try:
            result: Accepted | Rejected | None = None
            with anyio.move_on_after(config.ws_open_timeout):
                result = await handshake.run(stream)
            if result is None:
                raise UpstreamError(Failure.READ_TIMEOUT, f"no handshake answer within {config.ws_open_timeout:g}s")
        except UpstreamError as exc:
            await anyio.aclose_forcefully(stream)
            if may_retry_handshake(from_spare=from_spare, failure=exc.failure, bytes_received=handshake.bytes_received):
                stream, from_spare = None, False
                continue
            raise
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise
        if isinstance(result, Rejected):
            await anyio.aclose_forcefully(stream)
        return result


class UpstreamHandshake:
    """One client handshake on a connected stream; `bytes_received` tells a stale connection from a refusal.
    With `max_message_bytes`, the accepted connection refuses a message by its frames' announced lengths."""

    def __init__(self, request: Request, max_message_bytes: int | None = None) -> None:
        self.request = request
        self.max_message_bytes = max_message_bytes
        self.nonce = new_nonce()
        self.bytes_received = 0

    async def run(self, stream: anyio.abc.ByteStream) -> Accepted | Rejected:
        try:
            await stream.send(handshake_request(self.request, self.nonce))
        except STREAM_GONE as exc:
            raise UpstreamError(Failure.RESET, f"while sending the handshake: {exc!r}") from None
        buffer = b""
        while True:
            data = await self._receive(stream)
            if not data:
                if not buffer:
                    raise UpstreamError(Failure.RESET, "closed during the handshake")
                return await self._parse_with_h11(stream, buffer, eof=True)
            buffer += data
            end = buffer.find(b"\r\n\r\n")
            if end == -1:
                # A head ended by bare line feeds, or one too long: h11 decides what it is.
                if b"\n\n" in buffer or b"\n\r\n" in buffer or len(buffer) > MAX_HEAD_BYTES:
                    return await self._parse_with_h11(stream, buffer, eof=False)
                continue
            fields = split_switching_head(buffer[:end])
            if fields is None:
                return await self._parse_with_h11(stream, buffer, eof=False)
            return self._accepted(stream, fields, buffer[end + 4 :])

    async def _receive(self, stream: anyio.abc.ByteStream) -> bytes:
        try:
            data = await stream.receive(RECEIVE_SIZE)
        except anyio.EndOfStream:
            return b""
        except STREAM_GONE as exc:
            raise UpstreamError(Failure.RESET, f"during the handshake: {exc!r}") from None
        self.bytes_received += len(data)
        return data

    def _accepted(self, stream: anyio.abc.ByteStream, fields: Sequence[Header], trailing: bytes) -> Accepted:
        subprotocol, headers = check_switch(fields, self.nonce, self.request.subprotocols)
        guards: list[Extension] = (
            [MessageSizeGuard(self.max_message_bytes)] if self.max_message_bytes is not None else []
        )
        ws = Connection(ConnectionType.CLIENT, extensions=guards, trailing_data=trailing)
        return Accepted(stream, ws, subprotocol, headers)

    async def _parse_with_h11(self, stream: anyio.abc.ByteStream, received: bytes, *, eof: bool) -> Accepted | Rejected:
        """The general path: an h11 client that "sent" the same request reads the answer, body and all."""
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        fields = handshake_fields(self.request, self.nonce)
        conn.send(h11.Request(method=b"GET", target=self.request.target, headers=fields))
        conn.receive_data(received)
        if eof:
            conn.receive_data(b"")
        rejection: h11.Response | None = None
        body = bytearray()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if rejection is not None and eof:  # the body was cut short: relay what came
                    return Rejected(rejection.status_code, list(rejection.headers), bytes(body))
                failure = Failure.RESET if eof else Failure.PROTOCOL
                raise UpstreamError(failure, f"handshake: {exc}") from None
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    return self._accepted(stream, list(event.headers), conn.trailing_data[0])
                return Rejected(event.status_code, list(event.headers), b"")
            if isinstance(event, h11.Response):
                rejection = event
            elif isinstance(event, h11.Data):
                body += event.data[: MAX_REJECTION_BODY - len(body)]
            elif isinstance(event, h11.EndOfMessage):
                assert rejection is not None
                return Rejected(rejection.status_code, list(rejection.headers), bytes(body))
            elif event is h11.NEED_DATA:
                data = await self._receive(stream)
                eof = not data
                conn.receive_data(data)
            else:  # ConnectionClosed (or PAUSED, after the end): the body ends here
                if rejection is None:
                    raise UpstreamError(Failure.RESET, "closed during the handshake")
                return Rejected(rejection.status_code, list(rejection.headers), bytes(body))
