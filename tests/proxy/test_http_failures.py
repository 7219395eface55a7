"""Every way the upstream or the client can fail an HTTP exchange, and what the client sees."""

from __future__ import annotations

import logging
import socket

import anyio
import httpx
import pytest
from fluxlit_proxy import ProxyConfig, ReverseProxy, Unavailable, Upstream

from tests.proxy._asgi import call, http_scope, reset_on_close
from tests.proxy._peers import WatchesForClose

pytestmark = pytest.mark.anyio


async def test_refused_upstream_is_502_with_one_warning_naming_the_request(stack_factory, hooks, caplog, refused_port):
    port = refused_port
    async with stack_factory(resolve=lambda: Upstream(port=port), hooks=hooks) as stack:
        with caplog.at_level(logging.WARNING, logger="proxy"):
            response = await stack.client.get("/x", headers={"x-request-id": "rid-502"})
        assert response.status_code == 502
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.text == "upstream unreachable\n"
        assert hooks.errors == ["connect"]
        lines = [record for record in caplog.records if record.name == "proxy"]
        assert len(lines) == 1
        assert lines[0].levelno == logging.WARNING
        assert lines[0].request_id == "rid-502"  # type: ignore[attr-defined]


async def test_connect_timeout_is_502(stack_factory, hooks):
    # A listener with a full accept queue: the kernel drops further SYNs, so connecting hangs.
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.1", port))
        config = ProxyConfig(connect_timeout=0.3)
        async with stack_factory(resolve=lambda: Upstream(port=port), config=config, hooks=hooks) as stack:
            response = await stack.client.get("/x")
        assert (response.status_code, response.text) == (502, "upstream connect timed out\n")
        assert hooks.errors == ["connect"]


async def test_no_response_head_within_read_timeout_is_504(stack_factory, hooks):
    async with stack_factory(config=ProxyConfig(read_timeout=0.3), hooks=hooks) as stack:
        response = await stack.client.get("/slow-head?delay=0.6")
        assert (response.status_code, response.text) == (504, "upstream did not respond in time\n")
        assert hooks.errors == ["timeout"]


async def test_unavailable_is_503_with_retry_after_and_reason(stack_factory, hooks):
    async with stack_factory(
        resolve=lambda: Unavailable("app is restarting", 7, restarting=True), hooks=hooks
    ) as stack:
        response = await stack.client.get("/x")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "7"
        assert response.text == "app is restarting\n"
        assert hooks.errors == []


async def test_content_length_over_limit_is_413_before_contacting_upstream(tcp_server, stack_factory):
    connections = 0

    async def upstream(stream):
        nonlocal connections
        connections += 1
        await stream.aclose()

    async with tcp_server(upstream) as port:
        config = ProxyConfig(max_request_body_bytes=1000)
        async with stack_factory(resolve=lambda: Upstream(port=port), config=config) as stack:
            response = await stack.client.post("/x", content=b"x" * 1001)
            assert (response.status_code, response.text) == (413, "request body exceeds 1000 bytes\n")
        assert connections == 0


async def test_body_at_the_limit_passes(stack_factory):
    async with stack_factory(config=ProxyConfig(max_request_body_bytes=1000)) as stack:
        assert (await stack.client.post("/inspect", content=b"x" * 1000)).json()["body_length"] == 1000


async def test_chunked_body_over_limit_is_413_while_streaming(stack_factory):
    async def produce():
        for _ in range(10):
            yield b"x" * 300

    async with stack_factory(config=ProxyConfig(max_request_body_bytes=1000)) as stack:
        response = await stack.client.post("/inspect", content=produce())
        assert response.status_code == 413


async def test_chunked_body_over_limit_in_its_first_part_is_413_before_contacting_upstream(tcp_server, stack_factory):
    connections = 0

    async def upstream(stream):  # would answer at once, before reading any body, as Streamlit's 405 does
        nonlocal connections
        connections += 1
        await stream.send(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
        await stream.aclose()

    async def produce():
        yield b"x" * 1001

    async with tcp_server(upstream) as port:
        config = ProxyConfig(max_request_body_bytes=1000)
        async with stack_factory(resolve=lambda: Upstream(port=port), config=config) as stack:
            response = await stack.client.post("/x", content=produce())
            assert response.status_code == 413
        assert connections == 0


async def test_garbage_response_is_502_protocol(tcp_server, head_reader, stack_factory, hooks):
    async def upstream(stream):
        await head_reader(stream, bytearray())
        await stream.send(b"this is not HTTP\r\n\r\n")
        await stream.aclose()

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port), hooks=hooks) as stack:
        response = await stack.client.get("/x")
        assert (response.status_code, response.text) == (502, "upstream sent a malformed response\n")
        assert hooks.errors == ["protocol"]


async def test_upstream_closing_before_responding_is_502_reset(tcp_server, head_reader, stack_factory, hooks):
    async def upstream(stream):
        await head_reader(stream, bytearray())
        await stream.aclose()

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port), hooks=hooks) as stack:
        response = await stack.client.get("/x")
        assert response.status_code == 502
        assert hooks.errors == ["reset"]


async def test_switching_protocols_on_a_plain_request_is_502(tcp_server, head_reader, stack_factory, hooks):
    async def upstream(stream):
        await head_reader(stream, bytearray())
        await stream.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        with anyio.move_on_after(2):
            await stream.receive()
        await stream.aclose()

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port), hooks=hooks) as stack:
        assert (await stack.client.get("/x")).status_code == 502
        assert hooks.errors == ["protocol"]


async def test_informational_responses_are_consumed(tcp_server, head_reader, stack_factory):
    async def upstream(stream):
        await head_reader(stream, bytearray())
        await stream.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await stream.aclose()

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port)) as stack:
        response = await stack.client.get("/x")
        assert (response.status_code, response.text) == (200, "ok")


async def test_truncated_body_aborts_the_client_connection(tcp_server, head_reader, stack_factory, raw_http, hooks):
    async def upstream(stream):
        await head_reader(stream, bytearray())
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await stream.aclose()

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port), hooks=hooks) as stack:
        response = await raw_http(stack.proxy_port, b"GET", b"/x")
        assert response.status == 200
        assert not response.complete
        assert response.body == b"x" * 10
        assert hooks.errors == ["reset"]


async def test_upstream_dying_mid_chunked_stream_aborts_the_client_connection(
    tcp_server, head_reader, stack_factory, raw_http
):
    async def upstream(stream):
        await head_reader(stream, bytearray())
        await stream.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await stream.aclose()

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port)) as stack:
        response = await raw_http(stack.proxy_port, b"GET", b"/x")
        assert (response.status, response.body, response.complete) == (200, b"hello", False)
        with pytest.raises(httpx.RemoteProtocolError):
            await stack.client.get("/x")


async def test_stalled_body_past_read_timeout_aborts_the_client_connection(stack_factory, raw_http, hooks):
    async with stack_factory(config=ProxyConfig(read_timeout=0.3), hooks=hooks) as stack:
        response = await raw_http(stack.proxy_port, b"GET", b"/stall-body")
        assert (response.status, response.body, response.complete) == (200, b"x" * 10, False)
        assert hooks.errors == ["timeout"]


async def test_client_disconnect_mid_response_closes_the_upstream_connection(tcp_server, head_reader, stack_factory):
    upstream = WatchesForClose(head_reader, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port)) as stack:
        async with await anyio.connect_tcp("127.0.0.1", stack.proxy_port) as client:
            await client.send(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"hello" in await client.receive()
        with anyio.fail_after(2):
            await upstream.closed.wait()


async def test_stale_keepalive_connection_is_retried_once_on_a_fresh_one(tcp_server, head_reader, stack_factory, hooks):
    """The upstream answers one request per connection, then closes it without telling (the race)."""
    connections = 0

    async def upstream(stream):
        nonlocal connections
        connections += 1
        if await head_reader(stream, bytearray()) is not None:
            await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await head_reader(stream, bytearray())  # the next request on this connection: dropped
        await stream.aclose()

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port), hooks=hooks) as stack:
        for _ in range(3):
            response = await stack.client.get("/x")
            assert (response.status_code, response.text) == (200, "ok")
        assert connections == 3  # each later request met a stale connection, then a fresh one
        assert hooks.errors == []


async def test_post_on_a_stale_connection_is_not_retried(tcp_server, head_reader, stack_factory, hooks):
    async def upstream(stream):
        buffer = bytearray()
        if await head_reader(stream, buffer) is not None:
            await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await head_reader(stream, buffer)
        await stream.aclose()

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port), hooks=hooks) as stack:
        assert (await stack.client.get("/x")).status_code == 200
        assert (await stack.client.post("/x", content=b"data")).status_code == 502
        assert hooks.errors == ["reset"]


async def test_upstream_refusing_the_body_early_is_relayed_and_not_pooled(tcp_server, head_reader, stack_factory):
    """Expect: 100-continue answered with a final 417: the body is never sent, the connection not reused."""
    connections = 0

    async def upstream(stream):
        nonlocal connections
        connections += 1
        await head_reader(stream, bytearray())
        await stream.send(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n")
        with anyio.move_on_after(2):
            while await stream.receive():
                pass
        await stream.aclose()

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port)) as stack:
        headers = {"expect": "100-continue"}
        assert (await stack.client.post("/x", content=b"data", headers=headers)).status_code == 417
        assert (await stack.client.post("/x", content=b"data", headers=headers)).status_code == 417
        assert connections == 2


async def test_upstream_change_drops_connections_to_the_old_one(stack_factory, asgi_server, origin_factory):
    async with asgi_server(origin_factory()) as first, asgi_server(origin_factory()) as second:
        current = {"port": first}
        async with stack_factory(resolve=lambda: Upstream(port=current["port"])) as stack:
            assert (await stack.client.get("/inspect")).status_code == 200
            current["port"] = second
            assert (await stack.client.get("/inspect")).status_code == 200


async def test_client_that_stops_reading_is_dropped_after_write_timeout(stack_factory):
    dropped = anyio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "client read nothing" in record.getMessage():
                dropped.set()

    watch = Watch()
    logging.getLogger("proxy").addHandler(watch)
    try:
        async with (
            stack_factory(config=ProxyConfig(write_timeout=0.3)) as stack,
            await anyio.connect_tcp("127.0.0.1", stack.proxy_port) as client,
        ):
            await client.send(b"GET /bytes?n=200000000 HTTP/1.1\r\nHost: x\r\n\r\n")
            with anyio.fail_after(5):
                await dropped.wait()
    finally:
        logging.getLogger("proxy").removeHandler(watch)


async def test_an_upstream_that_stops_reading_an_upload_is_504_write_timeout(tcp_server, head_reader, hooks):
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


async def test_the_retry_after_a_stale_kept_alive_connection_is_logged_at_debug(
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
