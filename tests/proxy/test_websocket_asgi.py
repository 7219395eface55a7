"""The WebSocket bridge driven directly through ASGI, where hypercorn cannot show a behaviour.

Hypercorn 0.18 hands every client close to the app as 1006 and always offers the
websocket.http.response extension, so the client-to-upstream close relay and the close-code
denials for servers without that extension are checked here, with a scripted ASGI server.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from fluxlit_proxy import ProxyConfig, ReverseProxy, Unavailable, Upstream
from wsproto.events import CloseConnection, TextMessage

pytestmark = pytest.mark.anyio


def websocket_scope(*, extensions: bool) -> dict[str, Any]:
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
    """Plays the ASGI server: feeds `receive`, records everything the app sends."""

    def __init__(self) -> None:
        self.to_app, self._app_inbox = anyio.create_memory_object_stream[dict[str, Any]](16)
        self._app_outbox, self.from_app = anyio.create_memory_object_stream[dict[str, Any]](16)

    async def receive(self) -> dict[str, Any]:
        return await self._app_inbox.receive()

    async def send(self, message: dict[str, Any]) -> None:
        await self._app_outbox.send(message)

    async def next_sent(self) -> dict[str, Any]:
        with anyio.fail_after(3):
            return await self.from_app.receive()

    def close(self) -> None:
        for stream in (self.to_app, self._app_inbox, self._app_outbox, self.from_app):
            stream.close()


async def run_session(proxy: ReverseProxy, server: ScriptedServer, *, extensions: bool, script) -> None:
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(proxy, websocket_scope(extensions=extensions), server.receive, server.send)
                await server.to_app.send({"type": "websocket.connect"})
                await script()
    finally:
        server.close()


@pytest.mark.parametrize(
    ("client_code", "client_reason", "upstream_code", "upstream_reason"),
    [
        (1000, "", 1000, ""),
        (1001, "tab closed", 1001, "tab closed"),
        (4001, "bye", 4001, "bye"),
        (1005, "", 1000, ""),  # the client closed without a code
        (1006, "", 1011, ""),  # the client vanished
    ],
)
async def test_client_close_code_and_reason_are_relayed_to_the_upstream(
    raw_ws_server, client_code, client_reason, upstream_code, upstream_reason
):
    received: list[CloseConnection] = []
    got_close = anyio.Event()

    async def upstream(conn):
        event = await conn.next_event()
        received.append(event)
        got_close.set()

    async with raw_ws_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), ProxyConfig(ws_keepalive_interval=None))
        server = ScriptedServer()

        async def script() -> None:
            assert (await server.next_sent())["type"] == "websocket.accept"
            await server.to_app.send({"type": "websocket.disconnect", "code": client_code, "reason": client_reason})
            with anyio.fail_after(1):
                await got_close.wait()

        await run_session(proxy, server, extensions=True, script=script)
    assert (received[0].code, received[0].reason) == (upstream_code, upstream_reason)


async def test_upstream_refusal_without_the_response_extension_closes_1008(asgi_server, origin_factory):
    async with asgi_server(origin_factory()) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port, path_prefix="/ws/deny"))
        server = ScriptedServer()

        async def script() -> None:
            sent = await server.next_sent()
            assert (sent["type"], sent["code"]) == ("websocket.close", 1008)

        await run_session(proxy, server, extensions=False, script=script)


@pytest.mark.parametrize(("restarting", "code"), [(False, 1013), (True, 1012)])
async def test_unavailable_without_the_response_extension_closes_1013_or_1012(restarting, code):
    proxy = ReverseProxy(lambda: Unavailable("down", restarting=restarting))
    server = ScriptedServer()

    async def script() -> None:
        sent = await server.next_sent()
        assert (sent["type"], sent["code"], sent["reason"]) == ("websocket.close", code, "down")

    await run_session(proxy, server, extensions=False, script=script)


async def test_unreachable_upstream_without_the_response_extension_closes_1011():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proxy = ReverseProxy(lambda: Upstream(port=port))
    server = ScriptedServer()

    async def script() -> None:
        sent = await server.next_sent()
        assert (sent["type"], sent["code"]) == ("websocket.close", 1011)

    await run_session(proxy, server, extensions=False, script=script)


async def test_messages_are_relayed_as_whole_asgi_messages(raw_ws_server):
    async def upstream(conn):
        event = await conn.next_event()
        await conn.send(TextMessage(data="echo:" + event.data))
        await conn.next_event()

    async with raw_ws_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port))
        server = ScriptedServer()

        async def script() -> None:
            assert (await server.next_sent())["type"] == "websocket.accept"
            await server.to_app.send({"type": "websocket.receive", "text": "hi"})
            assert await server.next_sent() == {"type": "websocket.send", "text": "echo:hi"}
            await server.to_app.send({"type": "websocket.disconnect", "code": 1000})

        await run_session(proxy, server, extensions=True, script=script)


async def test_close_websockets_sends_the_code_to_the_client_leg(raw_ws_server):
    async def upstream(conn):
        await conn.next_event()

    async with raw_ws_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port))
        server = ScriptedServer()

        async def script() -> None:
            assert (await server.next_sent())["type"] == "websocket.accept"
            async with anyio.create_task_group() as tg:
                tg.start_soon(proxy.close_websockets, 1012, "restarting")
                sent = await server.next_sent()
            assert (sent["type"], sent["code"], sent["reason"]) == ("websocket.close", 1012, "restarting")

        await run_session(proxy, server, extensions=True, script=script)
