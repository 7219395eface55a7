"""Playing the ASGI server by hand, for what a real server in front cannot produce: scopes, one recorded HTTP
call, and a scripted WebSocket server that can block or fail its sends."""

from __future__ import annotations

import socket
import struct
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
import anyio.abc
from fluxlit_proxy import ReverseProxy


def http_scope(
    *, http_version: str = "1.1", method: str = "POST", headers: Iterable[tuple[bytes, bytes]] = ()
) -> dict[str, Any]:
    """An HTTPS request for /inspect from 10.1.2.3, as a server on port 8443 would hand it over."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": http_version,
        "method": method,
        "scheme": "https",
        "path": "/inspect",
        "raw_path": b"/inspect",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"app.example"), *headers],
        "client": ("10.1.2.3", 5555),
        "server": ("127.0.0.1", 8443),
    }


async def call(proxy: ReverseProxy, scope: dict[str, Any], messages: list[Any]) -> list[dict[str, Any]]:
    """Run one request: feed `messages` (an ASGI message, or an Event to wait for before the next), then wait
    forever like a server whose client stays; collect what the proxy sends."""
    pending = list(messages)
    sent: list[dict[str, Any]] = []
    never = anyio.Event()

    async def receive() -> dict[str, Any]:
        while pending and isinstance(pending[0], anyio.Event):
            await pending.pop(0).wait()
        if pending:
            return pending.pop(0)  # type: ignore[no-any-return]
        await never.wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await proxy(scope, receive, send)
    return sent


def body_of(sent: list[dict[str, Any]]) -> bytes:
    return b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")


def reset_on_close(stream: anyio.abc.SocketStream) -> None:
    """Make closing `stream` send a TCP RST instead of a FIN."""
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def websocket_scope(*, extensions: bool = True) -> dict[str, Any]:
    """A WebSocket for /ws; `extensions` says whether the server offers websocket.http.response."""
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"app.example"), (b"x-request-id", b"rid-asgi")],
        "client": ("10.1.2.3", 5555),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}} if extensions else {},
    }


class ScriptedServer:
    """Plays the ASGI server: feeds `receive`; `send` records, and can be made to block (a small `buffer`) or
    to raise `error` on the message type `fail_on`."""

    def __init__(self, *, buffer: int = 64, fail_on: str | None = None, error: BaseException | None = None) -> None:
        self.to_app, self._app_inbox = anyio.create_memory_object_stream[dict[str, Any]](64)
        self._app_outbox, self.from_app = anyio.create_memory_object_stream[dict[str, Any]](buffer)
        self.fail_on = fail_on
        self.error = error or anyio.BrokenResourceError()
        self.sent_types: list[str] = []

    async def receive(self) -> dict[str, Any]:
        return await self._app_inbox.receive()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent_types.append(message["type"])
        if message["type"] == self.fail_on:
            raise self.error
        await self._app_outbox.send(message)

    async def next_sent(self) -> dict[str, Any]:
        with anyio.fail_after(3):
            return await self.from_app.receive()

    def close(self) -> None:
        for stream in (self.to_app, self._app_inbox, self._app_outbox, self.from_app):
            stream.close()


async def run_session(
    proxy: ReverseProxy,
    server: ScriptedServer,
    script: Callable[[], Awaitable[None]],
    *,
    extensions: bool = True,
) -> None:
    """Connect one WebSocket through `proxy` and run `script` beside it; the server is closed afterwards."""
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(proxy, websocket_scope(extensions=extensions), server.receive, server.send)
                await server.to_app.send({"type": "websocket.connect"})
                await script()
    finally:
        server.close()


async def first_status(proxy: ReverseProxy) -> int:
    """Open one WebSocket through `proxy`; the status of the handshake answer the client got."""
    server = ScriptedServer()
    await server.to_app.send({"type": "websocket.connect"})
    with anyio.fail_after(5):
        await proxy(websocket_scope(), server.receive, server.send)
    message = await server.next_sent()
    server.close()
    await proxy.aclose()
    assert message["type"] == "websocket.http.response.start"
    return int(message["status"])


# No keep-alive pings and no spare connection: an upstream sees only the session under test.
NO_SPARE: dict[str, Any] = {"ws_keepalive_interval": None, "ws_spare_connection": False}
