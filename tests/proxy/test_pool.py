"""The idle pool against raw upstreams that close or write to kept-alive connections while they idle."""

from __future__ import annotations

import anyio
import pytest
from fluxlit_proxy import ProxyConfig, ProxyHooks, Upstream
from fluxlit_proxy.pool import ConnectionPool

pytestmark = pytest.mark.anyio


async def test_a_post_after_the_upstream_closed_its_idle_connection_goes_on_a_fresh_one(
    h11_upstream, tcp_server, stack_factory, hooks
):
    """uvicorn (Streamlit's server) closes a connection idle for its keep-alive; the POST must not meet it."""
    upstream = h11_upstream(status=200, body=b"ok", answer_early=False, keepalive_s=0.1)
    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port), hooks=hooks) as stack:
        assert (await stack.client.get("/first")).status_code == 200
        await anyio.sleep(0.4)  # the upstream has closed the pooled connection by now
        response = await stack.client.post("/form", content=b"a=1")
        assert (response.status_code, response.text) == (200, "ok")
    assert hooks.errors == []
    assert [(conn, method) for conn, method, _ in upstream.requests] == [(0, "GET"), (1, "POST")]


async def test_an_upload_after_the_upstream_closed_its_idle_connection_reaches_the_upstream(
    h11_upstream, tcp_server, stack_factory, hooks
):
    """A PUT with a body is idempotent but cannot be replayed once its body streamed: it must go out only once."""
    upstream = h11_upstream(status=204, body=b"", answer_early=False, keepalive_s=0.1)
    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port), hooks=hooks) as stack:
        assert (await stack.client.get("/first")).status_code == 204
        await anyio.sleep(0.4)
        response = await stack.client.put("/_stcore/upload_file/s/f", content=b"x" * 100_000)
        assert response.status_code == 204
    assert hooks.errors == []
    assert [method for _, method, _ in upstream.requests] == ["GET", "PUT"]


async def test_a_connection_the_upstream_wrote_to_unasked_is_not_handed_out(tcp_server, head_reader, stack_factory):
    """Bytes after a response were never asked for: read as the next response, they would answer the wrong request."""
    connections = 0

    async def upstream(stream):
        nonlocal connections
        connections += 1
        buffer = bytearray()
        while await head_reader(stream, buffer) is not None:
            await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await anyio.sleep(0.05)
            await stream.send(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port)) as stack:
        assert (await stack.client.get("/one")).text == "ok"
        await anyio.sleep(0.2)
        response = await stack.client.get("/two")
        assert (response.status_code, response.text) == (200, "ok")
    assert connections == 2


async def test_idle_time_counts_from_the_end_of_the_response_not_from_a_slow_client_reading_it(
    h11_upstream, tcp_server
):
    """The upstream's keep-alive timer starts when it has sent the response; a client that takes long over the
    last chunk must not make the pool think the connection is younger than the upstream does."""
    from fluxlit_proxy import ReverseProxy

    upstream = h11_upstream(status=200, body=b"ok", answer_early=False, keepalive_s=30)
    async with tcp_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), ProxyConfig(pool_idle_timeout=0.3, ws_spare_connection=False))

        async def get(client_delay: float) -> None:
            async def receive():
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message):
                if message["type"] == "http.response.body" and not message.get("more_body", False):
                    await anyio.sleep(client_delay)

            scope = {
                "type": "http", "http_version": "1.1", "method": "GET", "scheme": "http", "path": "/x",
                "raw_path": b"/x", "query_string": b"", "root_path": "", "headers": [(b"host", b"a")],
                "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
            }  # fmt: skip
            with anyio.fail_after(5):
                await proxy(scope, receive, send)

        await get(client_delay=0.25)  # the response ended 0.25 s before the connection went back to the pool
        await anyio.sleep(0.1)  # idle 0.35 s by the upstream's clock, 0.1 s since the release
        await get(client_delay=0)
        await proxy.aclose()
    assert upstream.connections == 2


async def test_a_discarded_connection_is_counted_neither_idle_nor_in_use(asgi_server, origin_factory):
    async with asgi_server(origin_factory()) as port:
        pool = ConnectionPool(ProxyConfig(), ProxyHooks())
        conn = await pool.acquire(Upstream(port=port))
        assert (pool.idle_count, pool.in_use_count) == (0, 1)
        await pool.discard(conn)
        assert (pool.idle_count, pool.in_use_count) == (0, 0)
        await pool.aclose()
