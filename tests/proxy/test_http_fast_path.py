"""The fast path: bodiless requests relayed without a watcher task while quick, Content-Length bodies
read past h11. Each behaviour the slow path had must survive it."""

from __future__ import annotations

import anyio
import pytest
from fluxlit_proxy import ProxyConfig, Upstream
from fluxlit_proxy.exchange import WATCH_CLIENT_AFTER

from tests.proxy._peers import WatchesForClose

pytestmark = pytest.mark.anyio


async def test_client_leaving_while_the_head_is_slow_closes_the_upstream_connection(
    tcp_server, head_reader, stack_factory
):
    upstream = WatchesForClose(head_reader)  # never answers

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port)) as stack:
        async with await anyio.connect_tcp("127.0.0.1", stack.proxy_port) as client:
            await client.send(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            await anyio.sleep(WATCH_CLIENT_AFTER * 4)
        with anyio.fail_after(2):
            await upstream.closed.wait()


async def test_client_leaving_mid_content_length_body_closes_the_upstream_connection(
    tcp_server, head_reader, stack_factory
):
    upstream = WatchesForClose(head_reader, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello")

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port)) as stack:
        async with await anyio.connect_tcp("127.0.0.1", stack.proxy_port) as client:
            await client.send(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while b"hello" not in received:
                received += await client.receive()
        with anyio.fail_after(2):
            await upstream.closed.wait()


async def test_read_timeout_shorter_than_the_unwatched_window_is_still_504(stack_factory, hooks):
    config = ProxyConfig(read_timeout=WATCH_CLIENT_AFTER / 5)
    async with stack_factory(config=config, hooks=hooks) as stack:
        response = await stack.client.get("/slow-head?delay=0.3")
        assert (response.status_code, response.text) == (504, "upstream did not respond in time\n")
        assert hooks.errors == ["timeout"]


async def test_no_response_head_after_an_upload_is_504(stack_factory, hooks):
    async with stack_factory(config=ProxyConfig(read_timeout=0.3), hooks=hooks) as stack:
        response = await stack.client.post("/slow-head?delay=0.8", content=b"x" * 1000)
        assert (response.status_code, response.text) == (504, "upstream did not respond in time\n")
        assert hooks.errors == ["timeout"]


async def test_content_length_body_in_many_reads_arrives_whole_and_the_connection_is_reused(stack_factory):
    async with stack_factory() as stack:
        first = (await stack.client.get("/inspect")).json()["client_port"]
        for _ in range(2):
            response = await stack.client.get("/bytes?n=3000000&chunk=65536&length=1")
            assert response.headers["content-length"] == "3000000"
            assert response.content == b"x" * 3_000_000
        assert (await stack.client.get("/inspect")).json()["client_port"] == first


async def test_empty_content_length_body_keeps_the_connection(stack_factory):
    async with stack_factory() as stack:
        first = (await stack.client.get("/inspect")).json()["client_port"]
        response = await stack.client.get("/status?code=200")
        assert (response.status_code, response.content) == (200, b"")
        assert (await stack.client.get("/inspect")).json()["client_port"] == first


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", id="bytes-past-the-body"),
        pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", id="http-1.0"),
        pytest.param(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", id="connection-close"),
    ],
)
async def test_content_length_response_that_cannot_keep_the_connection_is_not_pooled(
    tcp_server, head_reader, stack_factory, response
):
    connections = 0

    async def upstream(stream):
        nonlocal connections
        connections += 1
        buffer = bytearray()
        while await head_reader(stream, buffer) is not None:
            await stream.send(response)

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port)) as stack:
        for _ in range(2):
            assert (await stack.client.get("/x")).text == "ok"
        assert connections == 2


async def test_content_length_body_cut_short_aborts_the_client_connection(
    tcp_server, head_reader, stack_factory, raw_http, hooks
):
    async def upstream(stream):
        await head_reader(stream, bytearray())
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await stream.aclose()

    async with (
        tcp_server(upstream) as port,
        stack_factory(resolve=lambda: Upstream(port=port), hooks=hooks) as stack,
    ):
        response = await raw_http(stack.proxy_port, b"GET", b"/x")
        assert (response.status, response.body, response.complete) == (200, b"abc", False)
        assert hooks.errors == ["reset"]
