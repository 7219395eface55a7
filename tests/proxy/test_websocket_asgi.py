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

from tests.proxy._asgi import NO_SPARE, ScriptedServer, run_session, websocket_scope
from tests.proxy._peers import FirstEventAfter

pytestmark = pytest.mark.anyio


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
    upstream = FirstEventAfter()
    async with raw_ws_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), ProxyConfig(ws_keepalive_interval=None))
        server = ScriptedServer()

        async def script() -> None:
            assert (await server.next_sent())["type"] == "websocket.accept"
            await server.to_app.send({"type": "websocket.disconnect", "code": client_code, "reason": client_reason})
            with anyio.fail_after(1):
                await upstream.arrived.wait()

        await run_session(proxy, server, extensions=True, script=script)
    assert (upstream.received[0].code, upstream.received[0].reason) == (upstream_code, upstream_reason)


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


async def test_unreachable_upstream_without_the_response_extension_closes_1011(refused_port):
    proxy = ReverseProxy(lambda: Upstream(port=refused_port))
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


async def test_receive_messages_without_content_and_other_message_types_are_not_forwarded(raw_ws_server):
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


async def test_an_upstream_frame_wsproto_cannot_parse_ends_the_session_1011_as_a_protocol_error(raw_ws_server, hooks):
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
