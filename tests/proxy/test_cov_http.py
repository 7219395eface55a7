"""HTTP forwarding corners driven through ASGI: early disconnects, unforwardable heads, upstream write failures."""

from __future__ import annotations

import logging
import socket
import struct
from typing import Any

import anyio
import anyio.abc
import pytest
from fluxlit_proxy import ProxyConfig, ReverseProxy, Upstream
from fluxlit_proxy.pool import ConnectionPool
from fluxlit_proxy.transport import describe

pytestmark = pytest.mark.anyio


def http_scope(*, http_version: str = "1.1", method: str = "POST", headers=()) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": http_version,
        "method": method,
        "scheme": "http",
        "path": "/inspect",
        "raw_path": b"/inspect",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"app.example"), *headers],
        "client": ("10.1.2.3", 5555),
        "server": ("127.0.0.1", 8000),
    }


async def call(proxy: ReverseProxy, scope: dict[str, Any], messages: list[Any]) -> list[dict[str, Any]]:
    """Run one request: each item of `messages` is an ASGI message, or an Event to wait for before the next."""
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


def test_upstream_and_config_mistakes_say_what_to_write_instead() -> None:
    with pytest.raises(ValueError, match=r"path_prefix='api/' must start with '/' and not end with '/': try '/api'"):
        Upstream(port=1, path_prefix="api/")
    with pytest.raises(ValueError, match=r"ws_max_message_bytes=0 must be > 0"):
        ProxyConfig(ws_max_message_bytes=0)


def test_a_unix_upstream_is_described_by_its_socket_path() -> None:
    assert describe(Upstream(unix_path="/run/app.sock")) == "unix:/run/app.sock"
    assert describe(Upstream(port=8501)) == "127.0.0.1:8501"


async def test_the_pool_counts_idle_and_in_use_connections(asgi_server, origin_factory):
    from fluxlit_proxy import ProxyHooks

    async with asgi_server(origin_factory()) as port:
        pool = ConnectionPool(ProxyConfig(), ProxyHooks())
        upstream = Upstream(port=port)
        conn = await pool.acquire(upstream)
        assert (pool.idle_count, pool.in_use_count) == (0, 1)
        await pool.discard(conn)
        assert (pool.idle_count, pool.in_use_count) == (0, 0)
        await pool.aclose()


async def test_http2_client_gone_before_its_body_started_sends_nothing_upstream(tcp_server):
    contacted = anyio.Event()

    async def upstream(stream):
        contacted.set()

    async with tcp_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port))
        assert await call(proxy, http_scope(http_version="2"), [{"type": "http.disconnect"}]) == []
        await proxy.aclose()
    assert not contacted.is_set()


async def test_chunked_upload_with_a_limit_and_a_client_gone_at_once_sends_nothing_upstream(tcp_server):
    contacted = anyio.Event()

    async def upstream(stream):
        contacted.set()

    async with tcp_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), ProxyConfig(max_request_body_bytes=10))
        scope = http_scope(headers=[(b"transfer-encoding", b"chunked")])
        assert await call(proxy, scope, [{"type": "http.disconnect"}]) == []
        await proxy.aclose()
    assert not contacted.is_set()


async def test_a_request_head_h11_cannot_write_is_400_and_never_leaves(tcp_server, caplog):
    contacted = anyio.Event()

    async def upstream(stream):
        contacted.set()

    async with tcp_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port))
        scope = http_scope(method="GET", headers=[(b"x-split", b"one\r\nx-injected: two")])
        with caplog.at_level(logging.WARNING, logger="proxy"):
            sent = await call(proxy, scope, [{"type": "http.request"}])
        await proxy.aclose()
    assert sent[0]["status"] == 400
    assert body_of(sent) == b"request cannot be forwarded\n"
    assert "400, request not forwardable" in caplog.text
    assert not contacted.is_set()


async def test_a_body_longer_than_its_content_length_ends_the_exchange_as_a_client_gone(tcp_server, head_reader):
    received = bytearray()

    async def upstream(stream):
        await head_reader(stream, received)
        with anyio.move_on_after(2):
            while data := await stream.receive():
                received.extend(data)

    async with tcp_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port))
        scope = http_scope(headers=[(b"content-length", b"3")])
        sent = await call(proxy, scope, [{"type": "http.request", "body": b"too long", "more_body": False}])
        await proxy.aclose()
    assert sent == []
    assert bytes(received) == b""


async def test_unknown_asgi_messages_during_an_upload_are_skipped(asgi_server, origin_factory):
    async with asgi_server(origin_factory()) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port))
        scope = http_scope(headers=[(b"content-length", b"3")])
        messages = [
            {"type": "http.request", "body": b"a", "more_body": True},
            {"type": "http.request.trailers", "headers": []},
            {"type": "http.request", "body": b"bc", "more_body": False},
        ]
        sent = await call(proxy, scope, messages)
        await proxy.aclose()
    assert sent[0]["status"] == 200
    assert b'"body_length": 3' in body_of(sent)


async def test_an_upstream_that_stops_reading_an_upload_is_a_write_timeout(tcp_server, head_reader, hooks):
    stop = anyio.Event()

    async def upstream(stream):
        await head_reader(stream, bytearray())
        await stop.wait()  # never reads the body: the proxy's writes block once the buffers fill

    chunk = {"type": "http.request", "body": b"x" * (1024 * 1024), "more_body": True}
    async with tcp_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), ProxyConfig(write_timeout=0.3), hooks)
        scope = http_scope(headers=[(b"content-length", str(64 * 1024 * 1024).encode())])
        sent = await call(proxy, scope, [chunk] * 64)
        stop.set()
        await proxy.aclose()
    assert sent[0]["status"] == 504
    assert hooks.errors == ["timeout"]


async def test_an_upstream_that_resets_during_an_upload_is_502_reset(tcp_server, head_reader, hooks):
    reset_done = anyio.Event()

    async def upstream(stream):
        await head_reader(stream, bytearray())
        reset_on_close(stream)
        await stream.aclose()
        reset_done.set()

    async with tcp_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), hooks=hooks)
        scope = http_scope(headers=[(b"content-length", b"8")])
        messages = [
            {"type": "http.request", "body": b"abcd", "more_body": True},
            reset_done,
            {"type": "http.request", "body": b"efgh", "more_body": False},
        ]
        sent = await call(proxy, scope, messages)
        await proxy.aclose()
    assert sent[0]["status"] == 502
    assert hooks.errors == ["reset"]


async def test_the_retry_on_a_stale_kept_alive_connection_is_logged_at_debug(
    tcp_server, head_reader, stack_factory, caplog
):
    async def upstream(stream):
        if await head_reader(stream, bytearray()) is not None:
            await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await head_reader(stream, bytearray())  # the next request on this connection: dropped
        await stream.aclose()

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port)) as stack:
        assert (await stack.client.get("/x")).status_code == 200
        with caplog.at_level(logging.DEBUG, logger="proxy"):
            assert (await stack.client.get("/x")).status_code == 200
    assert "kept-alive connection was stale" in caplog.text
