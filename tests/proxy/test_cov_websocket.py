"""WebSocket bridge corners driven through ASGI: odd client messages, a client that stops reading or vanishes,
an upstream that stops reading or breaks the protocol, a server that fails the accept."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import pytest
from fluxlit_proxy import ProxyConfig, ReverseProxy, Upstream
from fluxlit_proxy.ws_handshake import upstream_host_value
from wsproto.events import CloseConnection, TextMessage

pytestmark = pytest.mark.anyio

NO_SPARE = {"ws_keepalive_interval": None, "ws_spare_connection": False}


def websocket_scope() -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"app.example")],
        "client": ("10.1.2.3", 5555),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
    }


class ScriptedServer:
    """Plays the ASGI server: feeds `receive`; `send` records, and can be made to block or fail."""

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


async def run_session(proxy: ReverseProxy, server: ScriptedServer, script: Callable[[], Awaitable[None]]) -> None:
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(proxy, websocket_scope(), server.receive, server.send)
                await server.to_app.send({"type": "websocket.connect"})
                await script()
    finally:
        server.close()


def test_a_host_that_idna_cannot_encode_is_replaced_by_the_upstream_address() -> None:
    assert upstream_host_value(b"bad..label", Upstream(port=8501)) == "127.0.0.1:8501"
    assert upstream_host_value("bücher.example".encode("latin-1"), Upstream(port=8501)) == "127.0.0.1:8501"
    assert upstream_host_value(None, Upstream(unix_path="/run/st.sock")) == "localhost"


async def test_a_client_that_leaves_before_connecting_is_not_bridged(raw_ws_server):
    contacted = anyio.Event()

    async def upstream(conn):
        contacted.set()

    async with raw_ws_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), ProxyConfig(**NO_SPARE))
        server = ScriptedServer()
        await server.to_app.send({"type": "websocket.disconnect", "code": 1001})
        with anyio.fail_after(5):
            await proxy(websocket_scope(), server.receive, server.send)
        server.close()
        await proxy.aclose()
    assert server.sent_types == []
    assert not contacted.is_set()


async def test_messages_without_content_and_unknown_types_are_not_forwarded(raw_ws_server):
    received: list[Any] = []

    async def upstream(conn):
        while not isinstance(event := await conn.next_event(), CloseConnection):
            received.append(event)
            await conn.send(TextMessage(data="echo " + event.data))

    async with raw_ws_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), ProxyConfig(**NO_SPARE))
        server = ScriptedServer()

        async def script() -> None:
            assert (await server.next_sent())["type"] == "websocket.accept"
            await server.to_app.send({"type": "websocket.receive"})
            await server.to_app.send({"type": "websocket.ping.extension"})
            await server.to_app.send({"type": "websocket.receive", "text": "hello"})
            assert await server.next_sent() == {"type": "websocket.send", "text": "echo hello"}
            await server.to_app.send({"type": "websocket.disconnect", "code": 1000})

        await run_session(proxy, server, script)
        await proxy.aclose()
    assert [(type(e).__name__, e.data) for e in received] == [("TextMessage", "hello")]


async def test_a_client_that_stops_reading_is_closed_1011_and_the_upstream_1001(raw_ws_server):
    upstream_close: list[CloseConnection] = []

    async def upstream(conn):
        with anyio.move_on_after(5):
            for index in range(100):
                await conn.send(TextMessage(data=f"m{index}"))
            while not isinstance(event := await conn.next_event(), CloseConnection):
                pass
            upstream_close.append(event)

    async with raw_ws_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), ProxyConfig(write_timeout=0.3, **NO_SPARE))
        server = ScriptedServer(buffer=2)

        async def script() -> None:
            await anyio.sleep(1.0)  # read nothing while the upstream floods
            types = []
            with anyio.move_on_after(3):
                async for message in server.from_app:
                    types.append((message["type"], message.get("code")))
                    if message["type"] == "websocket.close":
                        break
            assert types[-1] == ("websocket.close", 1011)

        await run_session(proxy, server, script)
        await proxy.aclose()
    assert [(e.code, e.reason) for e in upstream_close] == [(1001, "client stopped reading")]


async def test_a_client_gone_mid_session_closes_the_upstream_1001(raw_ws_server):
    upstream_close: list[CloseConnection] = []
    closed = anyio.Event()

    async def upstream(conn):
        await conn.send(TextMessage(data="first"))
        while not isinstance(event := await conn.next_event(), CloseConnection):
            pass
        upstream_close.append(event)
        closed.set()

    async with raw_ws_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), ProxyConfig(**NO_SPARE))
        server = ScriptedServer(fail_on="websocket.send")

        async def script() -> None:
            assert (await server.next_sent())["type"] == "websocket.accept"
            with anyio.fail_after(3):
                await closed.wait()

        await run_session(proxy, server, script)
        await proxy.aclose()
    assert [(e.code, e.reason) for e in upstream_close] == [(1001, "client went away")]
    assert "websocket.close" not in server.sent_types


async def test_an_upstream_that_stops_reading_ends_the_session_1011(raw_ws_server, hooks):
    release = anyio.Event()

    async def upstream(conn):
        await release.wait()  # reads nothing: the proxy's writes block once the buffers fill

    async with raw_ws_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), ProxyConfig(write_timeout=0.3, **NO_SPARE), hooks)
        server = ScriptedServer()

        async def script() -> None:
            assert (await server.next_sent())["type"] == "websocket.accept"
            big = "x" * (1024 * 1024)
            for _ in range(64):
                await server.to_app.send({"type": "websocket.receive", "text": big})
            message = await server.next_sent()
            assert (message["type"], message["code"]) == ("websocket.close", 1011)
            release.set()

        await run_session(proxy, server, script)
        await proxy.aclose()
    assert hooks.errors == ["reset"]


async def test_an_upstream_frame_wsproto_cannot_parse_is_a_protocol_error(raw_ws_server, hooks):
    async def upstream(conn):
        await conn.stream.send(b"\x83\x00")  # opcode 3 is reserved: not a frame a server may send
        with anyio.move_on_after(3):
            while not isinstance(await conn.next_event(), CloseConnection):
                pass

    async with raw_ws_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), ProxyConfig(**NO_SPARE), hooks)
        server = ScriptedServer()

        async def script() -> None:
            assert (await server.next_sent())["type"] == "websocket.accept"
            message = await server.next_sent()
            assert (message["type"], message["code"]) == ("websocket.close", 1011)

        await run_session(proxy, server, script)
        await proxy.aclose()
    assert hooks.errors == ["protocol"]


async def test_a_close_the_client_can_no_longer_receive_is_dropped_quietly(raw_ws_server, hooks):
    async def upstream(conn):
        await conn.send(CloseConnection(code=4000, reason="done"))
        with anyio.move_on_after(3):
            while not isinstance(await conn.next_event(), CloseConnection):
                pass

    async with raw_ws_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), ProxyConfig(**NO_SPARE), hooks)
        server = ScriptedServer(fail_on="websocket.close", error=RuntimeError("client already disconnected"))

        async def script() -> None:
            assert (await server.next_sent())["type"] == "websocket.accept"
            with anyio.fail_after(3):
                await hooks.session_closed.wait()

        await run_session(proxy, server, script)
        await proxy.aclose()
    assert hooks.closed == [4000]
    assert server.sent_types[-1] == "websocket.close"


async def test_an_accept_the_server_cannot_send_closes_the_upstream_leg(raw_ws_server, hooks):
    upstream_gone = anyio.Event()

    async def upstream(conn):
        with anyio.move_on_after(3):
            event = await conn.next_event()
            if isinstance(event, CloseConnection) and event.code == 1006:
                upstream_gone.set()

    async with raw_ws_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), ProxyConfig(**NO_SPARE), hooks)
        server = ScriptedServer(fail_on="websocket.accept", error=OSError("connection reset by peer"))
        await server.to_app.send({"type": "websocket.connect"})
        refused = pytest.RaisesGroup(
            pytest.RaisesExc(OSError, match="connection reset by peer"), flatten_subgroups=True
        )
        with refused, anyio.fail_after(5):
            await proxy(websocket_scope(), server.receive, server.send)
        with anyio.fail_after(3):
            await upstream_gone.wait()
        server.close()
        await proxy.aclose()
    assert hooks.opened == 0


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


async def test_an_upstream_that_never_answers_the_handshake_is_504(tcp_server, head_reader, hooks):
    async def upstream(stream):
        await head_reader(stream, bytearray())
        await anyio.sleep(5)

    async with tcp_server(upstream) as port:
        config = ProxyConfig(ws_open_timeout=0.2, **NO_SPARE)
        assert await first_status(ReverseProxy(lambda: Upstream(port=port), config, hooks)) == 504
    assert hooks.errors == ["timeout"]


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_an_upstream_that_closes_during_the_handshake_is_502(tcp_server, head_reader, hooks, reset):
    import socket
    import struct

    async def upstream(stream):
        await head_reader(stream, bytearray())
        if reset:
            raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()

    async with tcp_server(upstream) as port:
        assert await first_status(ReverseProxy(lambda: Upstream(port=port), ProxyConfig(**NO_SPARE), hooks)) == 502
    assert hooks.errors == ["reset"]


async def test_a_refusal_whose_body_ends_with_the_connection_is_relayed_whole(tcp_server, head_reader):
    async def upstream(stream):
        await head_reader(stream, bytearray())
        await stream.send(b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\nnot for you")
        await stream.aclose()

    async with tcp_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), ProxyConfig(**NO_SPARE))
        server = ScriptedServer()
        await server.to_app.send({"type": "websocket.connect"})
        with anyio.fail_after(5):
            await proxy(websocket_scope(), server.receive, server.send)
        start, body = await server.next_sent(), await server.next_sent()
        server.close()
        await proxy.aclose()
    assert start["status"] == 403
    assert body["body"] == b"not for you"
