"""HTTP through the proxy against a real hypercorn upstream: what the client and the upstream each see."""

from __future__ import annotations

import gzip
import hashlib
import json
import os

import anyio
import h11
import psutil
import pytest
from fluxlit_proxy import ProxyConfig, Upstream

pytestmark = pytest.mark.anyio


def names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [name.lower() for name, _ in headers]


async def test_get_passes_status_headers_and_body(stack_factory):
    async with stack_factory() as stack:
        response = await stack.client.get("/inspect?x=1")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        seen = response.json()
        assert (seen["method"], seen["raw_path"], seen["query_string"]) == ("GET", "/inspect", "x=1")


async def test_request_headers_reach_upstream_byte_for_byte_with_forwarding_added(stack_factory, raw_http):
    async with stack_factory() as stack:
        response = await raw_http(
            stack.proxy_port,
            b"GET",
            b"/inspect",
            [
                (b"Cookie", b"_streamlit_xsrf=2|ab|cd; other=x"),
                (b"Authorization", b"Bearer T0k3n"),
                (b"X-Request-ID", b"rid-123"),
                (b"X-Forwarded-For", b"203.0.113.7"),
                (b"X-Forwarded-Proto", b"https"),
                (b"Connection", b"x-drop-me"),
                (b"X-Drop-Me", b"secret"),
                (b"Proxy-Authorization", b"Basic eA=="),
            ],
        )
        seen = dict(map(tuple, json.loads(response.body)["headers"]))
        assert seen["host"] == f"127.0.0.1:{stack.proxy_port}"
        assert seen["cookie"] == "_streamlit_xsrf=2|ab|cd; other=x"
        assert seen["authorization"] == "Bearer T0k3n"
        assert seen["x-request-id"] == "rid-123"
        assert seen["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
        assert seen["x-forwarded-proto"] == "http"
        assert seen["x-forwarded-host"] == f"127.0.0.1:{stack.proxy_port}"
        assert seen["x-forwarded-port"] == str(stack.proxy_port)
        assert "x-forwarded-prefix" not in seen
        for hop in ("x-drop-me", "proxy-authorization"):
            assert hop not in seen
        sent_names = [name for name, _ in json.loads(response.body)["headers"]]
        assert sent_names.count("host") == 1


async def test_root_path_becomes_x_forwarded_prefix(stack_factory):
    async with stack_factory(proxy_settings={"root_path": "/mount"}) as stack:
        seen = dict(map(tuple, (await stack.client.get("/inspect")).json()["headers"]))
        assert seen["x-forwarded-prefix"] == "/mount"


@pytest.mark.parametrize(
    "target",
    [b"/inspect/caf%C3%A9/%E2%9C%93", b"/inspect/a%2Fb%2f/c%20d", b"/inspect/caf%c3%a9", b"/inspect/%25/+;=@:"],
)
async def test_non_ascii_and_percent_encoded_paths_are_forwarded_byte_exact(stack_factory, raw_http, target):
    async with stack_factory() as stack:
        response = await raw_http(stack.proxy_port, b"GET", target + b"?q=%E2%9C%93&a=b%26c")
        seen = json.loads(response.body)
        assert seen["raw_path"].encode("latin-1") == target
        assert seen["query_string"] == "q=%E2%9C%93&a=b%26c"


async def test_path_prefix_is_prepended_to_every_path(stack_factory, raw_http):
    async with stack_factory(path_prefix="/apps/demo") as stack:
        response = await raw_http(stack.proxy_port, b"GET", b"/x%2Fy?z=1")
        seen = json.loads(response.body)
        assert (seen["raw_path"], seen["query_string"]) == ("/apps/demo/x%2Fy", "z=1")


async def test_content_length_request_body_streams_up_with_its_length(stack_factory):
    body = os.urandom(3 * 1024 * 1024 + 7)
    async with stack_factory() as stack:
        seen = (await stack.client.post("/inspect", content=body)).json()
        headers = dict(map(tuple, seen["headers"]))
        assert headers["content-length"] == str(len(body))
        assert "transfer-encoding" not in headers
        assert (seen["body_length"], seen["body_sha256"]) == (len(body), hashlib.sha256(body).hexdigest())


async def test_chunked_request_body_streams_up_chunked(stack_factory):
    pieces = [os.urandom(100_000) for _ in range(20)]

    async def produce():
        for piece in pieces:
            yield piece

    async with stack_factory() as stack:
        seen = (await stack.client.post("/inspect", content=produce())).json()
        headers = dict(map(tuple, seen["headers"]))
        assert headers["transfer-encoding"] == "chunked"
        assert "content-length" not in headers
        whole = b"".join(pieces)
        assert (seen["body_length"], seen["body_sha256"]) == (len(whole), hashlib.sha256(whole).hexdigest())


async def test_request_and_response_bodies_stream_concurrently(stack_factory):
    """The upstream echoes each chunk as it arrives; each echo comes back before the next chunk is sent."""
    async with stack_factory() as stack:
        conn = h11.Connection(h11.CLIENT)
        with anyio.fail_after(5):
            async with await anyio.connect_tcp("127.0.0.1", stack.proxy_port) as sock:
                head = h11.Request(
                    method=b"POST",
                    target=b"/echo",
                    headers=[(b"host", b"x"), (b"transfer-encoding", b"chunked")],
                )
                await sock.send(conn.send(head))
                echoed = b""
                for index in range(3):
                    chunk = b"chunk-%d;" % index
                    await sock.send(conn.send(h11.Data(data=chunk)))
                    while not echoed.endswith(chunk):
                        event = conn.next_event()
                        if event is h11.NEED_DATA:
                            conn.receive_data(await sock.receive())
                        elif isinstance(event, h11.Data):
                            echoed += event.data
                assert echoed == b"chunk-0;chunk-1;chunk-2;"


async def test_chunked_response_streams_down_chunked(stack_factory, raw_http):
    async with stack_factory() as stack:
        response = await raw_http(stack.proxy_port, b"GET", b"/bytes?n=200000&chunk=7000")
        assert response.complete
        assert len(response.body) == 200000
        assert b"transfer-encoding" in names(response.headers)
        assert b"content-length" not in names(response.headers)


async def test_response_content_length_is_kept(stack_factory, raw_http):
    async with stack_factory() as stack:
        response = await raw_http(stack.proxy_port, b"GET", b"/bytes?n=200000&chunk=7000&length=1")
        assert (b"content-length", b"200000") in [(n.lower(), v) for n, v in response.headers]
        assert b"transfer-encoding" not in names(response.headers)
        assert len(response.body) == 200000


async def test_head_gets_headers_only(stack_factory, raw_http):
    async with stack_factory() as stack:
        response = await raw_http(stack.proxy_port, b"HEAD", b"/file")
        assert response.status == 200
        assert (b"content-length", b"1024") in [(n.lower(), v) for n, v in response.headers]
        assert response.body == b""


async def test_range_request_gets_206(stack_factory):
    async with stack_factory() as stack:
        response = await stack.client.get("/file", headers={"Range": "bytes=10-19"})
        assert response.status_code == 206
        assert response.headers["content-range"] == "bytes 10-19/1024"
        assert response.headers["accept-ranges"] == "bytes"
        assert response.content == bytes(range(10, 20))


async def test_unsatisfiable_range_gets_416(stack_factory):
    async with stack_factory() as stack:
        response = await stack.client.get("/file", headers={"Range": "bytes=5000-"})
        assert response.status_code == 416
        assert response.headers["content-range"] == "bytes */1024"


async def test_matching_etag_gets_304_without_body(stack_factory, raw_http):
    async with stack_factory() as stack:
        response = await raw_http(stack.proxy_port, b"GET", b"/file", [(b"if-none-match", b'"v1"')])
        assert response.status == 304
        assert response.body == b""
        assert (b"etag", b'"v1"') in [(n.lower(), v) for n, v in response.headers]


async def test_204_has_no_body(stack_factory, raw_http):
    async with stack_factory() as stack:
        response = await raw_http(stack.proxy_port, b"GET", b"/status?code=204")
        assert (response.status, response.body, response.complete) == (204, b"", True)


async def test_content_encoding_passes_untouched(stack_factory, raw_http):
    async with stack_factory() as stack:
        response = await raw_http(stack.proxy_port, b"GET", b"/gzip", [(b"accept-encoding", b"gzip")])
        assert (b"content-encoding", b"gzip") in [(n.lower(), v) for n, v in response.headers]
        assert gzip.decompress(response.body) == b"hello " * 100


async def test_response_headers_once_each_in_order_cookies_separate(stack_factory, raw_http):
    async with stack_factory() as stack:
        response = await raw_http(stack.proxy_port, b"GET", b"/cookies")
        headers = [(name.lower(), value) for name, value in response.headers]
        assert [value for name, value in headers if name == b"set-cookie"] == [b"a=1; Path=/", b"b=2; Path=/; HttpOnly"]
        assert [value for name, value in headers if name == b"x-order"] == [b"first", b"second"]
        assert names(headers).count(b"date") == 1
        assert names(headers).count(b"server") == 1
        for hop in (b"x-hop", b"keep-alive", b"connection"):
            assert hop not in names(headers)


async def test_server_sent_events_arrive_as_they_are_sent(stack_factory):
    async with stack_factory() as stack, stack.client.stream("GET", "/sse") as response:
        assert response.headers["content-type"] == "text/event-stream"
        started = anyio.current_time()
        stamps = []
        async for chunk in response.aiter_raw():
            stamps.append((anyio.current_time() - started, chunk))
        assert b"".join(chunk for _, chunk in stamps) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
        assert stamps[0][1] == b"data: 0\n\n"
        # Events are 0.2 s apart: buffering would deliver them all at once when the stream ends.
        assert stamps[-1][0] - stamps[0][0] > 0.3


async def test_keepalive_connections_are_reused(stack_factory, hooks):
    async with stack_factory(hooks=hooks) as stack:
        ports = {(await stack.client.get("/inspect")).json()["client_port"] for _ in range(5)}
        assert len(ports) == 1
        assert hooks.pool[-1] == (1, 0)


async def test_connection_close_response_is_not_pooled(stack_factory):
    async with stack_factory() as stack:
        first = (await stack.client.get("/inspect")).json()["client_port"]
        assert (await stack.client.get("/close")).text == "ok"
        assert (await stack.client.get("/inspect")).json()["client_port"] != first


async def test_idle_connections_expire(stack_factory):
    async with stack_factory(config=ProxyConfig(pool_idle_timeout=0.1)) as stack:
        first = (await stack.client.get("/inspect")).json()["client_port"]
        await anyio.sleep(0.2)
        assert (await stack.client.get("/inspect")).json()["client_port"] != first


async def test_pool_keeps_at_most_pool_max_connections_idle(stack_factory, hooks):
    async with stack_factory(config=ProxyConfig(pool_max_connections=2), hooks=hooks) as stack:
        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(stack.client.get, "/slow-head?delay=0.1")
        assert max(idle for idle, _ in hooks.pool) <= 2
        assert hooks.pool[-1][1] == 0


async def test_pool_disabled_opens_a_connection_per_request(stack_factory):
    async with stack_factory(config=ProxyConfig(pool_max_connections=0)) as stack:
        ports = {(await stack.client.get("/inspect")).json()["client_port"] for _ in range(3)}
        assert len(ports) == 3


async def test_expect_100_continue_body_is_forwarded(stack_factory, raw_http):
    async with stack_factory() as stack:
        response = await raw_http(
            stack.proxy_port, b"POST", b"/inspect", [(b"expect", b"100-continue")], body=b"payload"
        )
        seen = json.loads(response.body)
        assert seen["body_length"] == 7
        assert dict(map(tuple, seen["headers"]))["expect"] == "100-continue"


async def test_unix_socket_upstream(tmp_path, asgi_server, stack_factory, origin_factory):
    path = str(tmp_path / "upstream.sock")
    async with (
        asgi_server(origin_factory(), unix_path=path),
        stack_factory(resolve=lambda: Upstream(unix_path=path)) as stack,
    ):
        first = await stack.client.get("/inspect/u%20x")
        assert first.json()["raw_path"] == "/inspect/u%20x"
        assert (await stack.client.get("/file")).content[:4] == bytes(range(4))


@pytest.mark.slow
async def test_100_mib_response_streams_in_bounded_memory(stack_factory):
    total = 100 * 1024 * 1024
    process = psutil.Process()
    async with stack_factory() as stack:
        await stack.client.get("/bytes?n=1000")  # warm up buffers, pool and imports
        before = process.memory_info().rss
        peak, received = before, 0
        async with stack.client.stream("GET", f"/bytes?n={total}&length=1") as response:
            async for chunk in response.aiter_raw():
                received += len(chunk)
                peak = max(peak, process.memory_info().rss) if received % (8 * 1024 * 1024) < len(chunk) else peak
        peak = max(peak, process.memory_info().rss)
        assert received == total
        assert peak - before < 50 * 1024 * 1024


@pytest.mark.slow
async def test_100_mib_upload_streams_in_bounded_memory(stack_factory):
    total, piece = 100 * 1024 * 1024, os.urandom(256 * 1024)
    process = psutil.Process()
    peak = 0

    async def produce():
        nonlocal peak
        for index in range(total // len(piece)):
            if index % 32 == 0:
                peak = max(peak, process.memory_info().rss)
            yield piece

    async with stack_factory() as stack:
        await stack.client.get("/bytes?n=1000")
        before = process.memory_info().rss
        response = await stack.client.post("/inspect", content=produce(), timeout=60)
        assert response.json()["body_length"] == total
        assert max(peak, process.memory_info().rss) - before < 50 * 1024 * 1024
