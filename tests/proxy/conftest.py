"""Real local upstreams for the proxy tests: a hypercorn-served origin app, raw sockets, and the proxy itself."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import parse_qs

import anyio
import anyio.abc
import h11
import httpx
import pytest
from fluxlit_proxy import ProxyConfig, ProxyHooks, ReassemblyBudget, ReverseProxy, Unavailable, Upstream
from hypercorn.asyncio import serve
from hypercorn.config import Config
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection
from wsproto.events import Request as WsRequest

from tests._lifespan import answer_lifespan

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

FILE_BODY = bytes(range(256)) * 4  # 1024 bytes
FILE_ETAG = b'"v1"'


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --------------------------------------------------------------------------- serving


@asynccontextmanager
async def serve_asgi(
    app: App | ReverseProxy, unix_path: str | None = None, **settings: Any
) -> AsyncGenerator[int, None]:
    """Serve `app` with hypercorn on 127.0.0.1:<ephemeral> (or a unix socket); yields the port (0 for unix)."""
    if unix_path is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(unix_path)
    sock.listen(128)  # connections queue before hypercorn starts accepting: no readiness wait needed
    port = sock.getsockname()[1] if unix_path is None else 0
    config = Config()
    config.bind = [f"fd://{os.dup(sock.fileno())}"]  # hypercorn owns the duplicate
    sock.close()
    config.graceful_timeout = 1.0
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.websocket_max_message_size = 64 * 1024 * 1024
    for name, value in settings.items():
        setattr(config, name, value)
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(serve, app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
        try:
            yield port
        finally:
            stop.set()


Handler = Callable[[anyio.abc.SocketStream], Awaitable[None]]


@asynccontextmanager
async def serve_tcp(handler: Handler) -> AsyncGenerator[int, None]:
    """A raw TCP upstream on 127.0.0.1:<ephemeral>, one `handler` task per connection."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def guarded(stream: anyio.abc.SocketStream) -> None:
        # A peer going away is part of every misbehaving-upstream scenario, not a test failure.
        async with stream:
            with suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await handler(stream)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, guarded)
        try:
            yield port
        finally:
            tg.cancel_scope.cancel()


async def read_request_head(stream: anyio.abc.SocketStream, buffer: bytearray) -> bytes | None:
    """Read one request head (up to the blank line) for raw upstreams; None on EOF."""
    while b"\r\n\r\n" not in buffer:
        try:
            buffer += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return None
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    buffer[:] = rest
    return head


@dataclass
class RecordingHooks(ProxyHooks):
    errors: list[str] = field(default_factory=list)
    pool: list[tuple[int, int]] = field(default_factory=list)
    opened: int = 0
    messages: list[tuple[str, int]] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    session_closed: anyio.Event = field(default_factory=anyio.Event)

    def upstream_error(self, kind: str) -> None:
        self.errors.append(kind)

    def pool_changed(self, idle: int, in_use: int) -> None:
        self.pool.append((idle, in_use))

    def websocket_opened(self) -> None:
        self.opened += 1

    def websocket_message(self, direction: str, size: int) -> None:
        self.messages.append((direction, size))

    def websocket_closed(self, code: int, duration_s: float) -> None:
        self.closed.append(code)
        self.session_closed.set()


@dataclass
class Stack:
    upstream_port: int | None
    proxy_port: int
    proxy: ReverseProxy
    client: httpx.AsyncClient
    origin: Origin

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.proxy_port}"


@asynccontextmanager
async def proxy_stack(
    *,
    upstream_app: App | None = None,
    upstream_port: int | None = None,
    config: ProxyConfig | None = None,
    hooks: ProxyHooks | None = None,
    resolve: Callable[[], Upstream | Unavailable] | None = None,
    path_prefix: str = "",
    proxy_settings: dict[str, Any] | None = None,
    budget: ReassemblyBudget | None = None,
) -> AsyncGenerator[Stack, None]:
    """Origin (unless a port or resolver is given) behind the proxy, both under hypercorn, plus a client."""
    origin = Origin()
    async with AsyncExitStack() as stack:
        if upstream_port is None and resolve is None:
            upstream_port = await stack.enter_async_context(serve_asgi(upstream_app or origin))
        port = upstream_port

        def default_resolve() -> Upstream | Unavailable:
            return Upstream(port=port, path_prefix=path_prefix)

        proxy = ReverseProxy(resolve or default_resolve, config, hooks, budget)
        proxy_port = await stack.enter_async_context(serve_asgi(proxy, **(proxy_settings or {})))
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{proxy_port}", timeout=10)
        )
        yield Stack(upstream_port, proxy_port, proxy, client, origin)


@pytest.fixture
def stack_factory() -> Callable[..., Any]:
    return proxy_stack


@pytest.fixture
def asgi_server() -> Callable[..., Any]:
    return serve_asgi


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture
def origin_factory() -> Callable[[], Origin]:
    return Origin


@pytest.fixture
def tcp_server() -> Callable[..., Any]:
    return serve_tcp


@pytest.fixture
def head_reader() -> Callable[..., Any]:
    return read_request_head


@pytest.fixture
def refused_port() -> int:
    """A loopback port nobody listens on (bound then closed; good enough on loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- the origin app


def _headers_json(scope: Scope) -> list[list[str]]:
    return [[name.decode("latin-1"), value.decode("latin-1")] for name, value in scope["headers"]]


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Origin:
    """The well-behaved upstream: every route shows one HTTP or WebSocket behaviour the proxy must keep."""

    def __init__(self) -> None:
        self.ws_client_closes: dict[str, tuple[int, str]] = {}
        self.ws_closed = anyio.Event()
        self.disconnects = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
            return
        route = getattr(self, "http_" + scope["path"].strip("/").split("/")[0].replace("-", "_"), None)
        if route is None:
            await self.http_inspect(scope, receive, send)
            return
        await route(scope, receive, send)

    @staticmethod
    def query(scope: Scope) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(scope["query_string"].decode()).items()}

    async def http_inspect(self, scope: Scope, receive: Receive, send: Send) -> None:
        digest, length = hashlib.sha256(), 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            digest.update(message.get("body", b""))
            length += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = json.dumps(
            {
                "method": scope["method"],
                "raw_path": scope["raw_path"].decode("latin-1"),
                "query_string": scope["query_string"].decode("latin-1"),
                "headers": _headers_json(scope),
                "client_port": scope["client"][1] if scope["client"] else None,
                "body_length": length,
                "body_sha256": digest.hexdigest(),
            }
        ).encode()
        await _respond(send, 200, [(b"content-type", b"application/json")], body)

    async def http_echo(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Streams the request body back chunk by chunk, as it arrives."""
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            await send({"type": "http.response.body", "body": message.get("body", b""), "more_body": True})
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.body", "body": b""})

    async def http_bytes(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = self.query(scope)
        total, chunk = int(query.get("n", "1000")), int(query.get("chunk", "65536"))
        headers = [(b"content-type", b"application/octet-stream")]
        if query.get("length") == "1":
            headers.append((b"content-length", str(total).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        block = b"x" * chunk
        sent = 0
        while sent < total:
            piece = block[: min(chunk, total - sent)]
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            sent += len(piece)
        await send({"type": "http.response.body", "body": b""})

    async def http_file(self, scope: Scope, receive: Receive, send: Send) -> None:
        base = [(b"etag", FILE_ETAG), (b"accept-ranges", b"bytes"), (b"content-type", b"application/octet-stream")]
        if _header(scope, b"if-none-match") == FILE_ETAG:
            await _respond(send, 304, base)
            return
        spec = _header(scope, b"range")
        if spec is None:
            await _respond(send, 200, [*base, (b"content-length", str(len(FILE_BODY)).encode())], FILE_BODY)
            return
        start_text, _, end_text = spec.removeprefix(b"bytes=").partition(b"-")
        start, end = int(start_text), int(end_text or len(FILE_BODY) - 1)
        if start >= len(FILE_BODY):
            await _respond(send, 416, [*base, (b"content-range", b"bytes */%d" % len(FILE_BODY))])
            return
        part = FILE_BODY[start : end + 1]
        await _respond(
            send,
            206,
            [
                *base,
                (b"content-range", b"bytes %d-%d/%d" % (start, end, len(FILE_BODY))),
                (b"content-length", str(len(part)).encode()),
            ],
            part,
        )

    async def http_gzip(self, scope: Scope, receive: Receive, send: Send) -> None:
        import gzip

        body = gzip.compress(b"hello " * 100)
        await _respond(
            send,
            200,
            [(b"content-encoding", b"gzip"), (b"content-length", str(len(body)).encode())],
            body,
        )

    async def http_cookies(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _respond(
            send,
            200,
            [
                (b"set-cookie", b"a=1; Path=/"),
                (b"x-order", b"first"),
                (b"set-cookie", b"b=2; Path=/; HttpOnly"),
                (b"x-order", b"second"),
                (b"connection", b"x-hop"),
                (b"x-hop", b"must not pass"),
                (b"keep-alive", b"timeout=5"),
            ],
            b"ok",
        )

    async def http_status(self, scope: Scope, receive: Receive, send: Send) -> None:
        code = int(self.query(scope)["code"])
        await _respond(send, code, [(b"content-length", b"0")] if code not in (204, 304) else [])

    async def http_sse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for index in range(3):
            await send({"type": "http.response.body", "body": b"data: %d\n\n" % index, "more_body": True})
            await anyio.sleep(0.2)
        await send({"type": "http.response.body", "body": b""})

    async def http_slow_head(self, scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.sleep(float(self.query(scope)["delay"]))
        await _respond(send, 200, [], b"late")

    async def http_stall_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
        await send({"type": "http.response.body", "body": b"x" * 10, "more_body": True})
        with anyio.move_on_after(10):
            while (await receive())["type"] != "http.disconnect":
                pass

    async def http_close(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _respond(send, 200, [(b"connection", b"close"), (b"content-length", b"2")], b"ok")

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = self.query(scope)
        assert (await receive())["type"] == "websocket.connect"
        if scope["path"].startswith("/ws/deny"):
            await send({"type": "websocket.http.response.start", "status": 403, "headers": [(b"x-denied", b"yes")]})
            await send({"type": "websocket.http.response.body", "body": b"origin says no"})
            return
        offered = scope["subprotocols"]
        pick = query.get("pick")
        subprotocol = offered[-1] if pick == "last" and offered else None
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.ws_client_closes[query.get("id", "")] = (message.get("code", 0), message.get("reason", ""))
                self.ws_closed.set()
                return
            text = message.get("text")
            if text is not None and text.startswith("close "):
                _, code, reason = text.split(" ", 2)
                await send({"type": "websocket.close", "code": int(code), "reason": reason})
                return
            if text == "whoami":
                info = {
                    "headers": _headers_json(scope),
                    "subprotocols": offered,
                    "raw_path": scope["raw_path"].decode(),
                }
                await send({"type": "websocket.send", "text": json.dumps(info)})
                continue
            await send({"type": "websocket.send", "text": text, "bytes": message.get("bytes")})


# --------------------------------------------------------------------------- a raw h11 client


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    complete: bool  # False when the connection ended before the body did: an aborted response


async def h11_request(
    port: int,
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    deadline: float = 5.0,
) -> RawResponse:
    """One request over a fresh connection, seeing the response exactly as sent (raw header list)."""
    conn = h11.Connection(h11.CLIENT)
    all_headers = [(b"host", b"127.0.0.1:%d" % port), *(headers or [])]
    if body:
        all_headers.append((b"content-length", b"%d" % len(body)))
    with anyio.fail_after(deadline):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            data = conn.send(h11.Request(method=method, target=target, headers=all_headers))
            data += conn.send(h11.Data(data=body)) if body else b""
            data += conn.send(h11.EndOfMessage())
            await stream.send(data)
            response: h11.Response | None = None
            chunks: list[bytes] = []
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError:
                    assert response is not None
                    return RawResponse(
                        response.status_code, list(response.headers.raw_items()), b"".join(chunks), False
                    )
                if event is h11.NEED_DATA:
                    try:
                        conn.receive_data(await stream.receive())
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        conn.receive_data(b"")
                    continue
                if isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    assert response is not None
                    return RawResponse(response.status_code, list(response.headers.raw_items()), b"".join(chunks), True)


@pytest.fixture
def raw_http() -> Callable[..., Any]:
    return h11_request


# --------------------------------------------------------------------------- a raw wsproto upstream


class RawWebSocket:
    """The server side of one upstream WebSocket, driven by hand to misbehave on purpose."""

    def __init__(self, stream: anyio.abc.SocketStream, ws: WSConnection, request: WsRequest) -> None:
        self.stream = stream
        self.ws = ws
        self.request = request

    async def send(self, event: Any) -> None:
        await self.stream.send(self.ws.send(event))

    async def next_event(self) -> Any:
        """The next wsproto event; a vanished peer shows up as CloseConnection(1006)."""
        while True:
            for event in self.ws.events():
                return event
            try:
                data: bytes | None = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                data = None
            self.ws.receive_data(data)


WsHandler = Callable[[RawWebSocket], Awaitable[None]]


@asynccontextmanager
async def serve_raw_websocket(handler: WsHandler, subprotocol: str | None = None) -> AsyncGenerator[int, None]:
    async def accept(stream: anyio.abc.SocketStream) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        while True:
            ws.receive_data(await stream.receive())
            for event in ws.events():
                if isinstance(event, WsRequest):
                    await stream.send(ws.send(AcceptConnection(subprotocol=subprotocol)))
                    await handler(RawWebSocket(stream, ws, event))
                    return

    async with serve_tcp(accept) as port:
        yield port


@pytest.fixture
def raw_ws_server() -> Callable[..., Any]:
    return serve_raw_websocket


# --------------------------------------------------------------------------- an h11 upstream that answers early


@dataclass
class H11Upstream:
    """A raw upstream parsing with h11 as uvicorn does: it can answer before reading the body and close idle
    connections after `keepalive_s`, and it records what it could not parse (uvicorn's "Invalid HTTP request").
    """

    status: int = 405
    body: bytes = b"Method Not Allowed"
    answer_early: bool = True
    keepalive_s: float = 5.0
    connections: int = 0
    requests: list[tuple[int, str, bytes]] = field(default_factory=list)  # (connection, method, target)
    invalid: list[str] = field(default_factory=list)

    async def __call__(self, stream: anyio.abc.SocketStream) -> None:
        index, self.connections = self.connections, self.connections + 1
        conn = h11.Connection(h11.SERVER)
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self.invalid.append(str(exc))
                await stream.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            if event is h11.NEED_DATA:
                between_requests = conn.our_state is h11.IDLE and conn.their_state is h11.IDLE
                with anyio.move_on_after(self.keepalive_s if between_requests else 30):
                    conn.receive_data(await stream.receive())
                    continue
                return  # the keep-alive timer fired: close, as uvicorn does
            if isinstance(event, h11.Request):
                self.requests.append((index, event.method.decode(), bytes(event.target)))
                if self.answer_early:
                    await self._respond(stream, conn)
            elif isinstance(event, h11.EndOfMessage):
                if conn.our_state is h11.SEND_RESPONSE:
                    await self._respond(stream, conn)
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return

    async def _respond(self, stream: anyio.abc.SocketStream, conn: h11.Connection) -> None:
        head = h11.Response(status_code=self.status, headers=[(b"content-length", b"%d" % len(self.body))])
        await stream.send(conn.send(head) + conn.send(h11.Data(data=self.body)) + conn.send(h11.EndOfMessage()))


@pytest.fixture
def h11_upstream() -> Callable[..., H11Upstream]:
    return H11Upstream
