"""The HTTP path driven directly through ASGI, for what an HTTP/1.1 server in front cannot produce."""

from __future__ import annotations

import json
import logging

import anyio
import pytest
from fluxlit_proxy import ProxyConfig, ReverseProxy, Upstream
from fluxlit_proxy.failures import ResponseAborted

from tests.proxy._asgi import body_of, call, http_scope
from tests.proxy._peers import WatchesForClose

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("messages", "framing_header"),
    [
        ([{"type": "http.request", "body": b"abc", "more_body": False}], ["content-length", "3"]),
        (
            [
                {"type": "http.request", "body": b"ab", "more_body": True},
                {"type": "http.request", "body": b"c", "more_body": False},
            ],
            ["transfer-encoding", "chunked"],
        ),
    ],
)
async def test_http2_body_without_content_length_gets_framed_for_http11(
    asgi_server, origin_factory, messages, framing_header
):
    async with asgi_server(origin_factory()) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port))
        sent = await call(proxy, http_scope(http_version="2"), messages)
        await proxy.aclose()
    seen = json.loads(body_of(sent))
    assert framing_header in seen["headers"]
    assert seen["body_length"] == 3


async def test_http2_request_without_body_has_no_framing(asgi_server, origin_factory):
    async with asgi_server(origin_factory()) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port))
        sent = await call(proxy, http_scope(http_version="2", method="GET"), [{"type": "http.request"}])
        await proxy.aclose()
    names = [name for name, _ in json.loads(body_of(sent))["headers"]]
    assert "content-length" not in names
    assert "transfer-encoding" not in names


async def test_https_scheme_is_forwarded_as_x_forwarded_proto(asgi_server, origin_factory):
    async with asgi_server(origin_factory()) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port))
        sent = await call(proxy, http_scope(method="GET"), [{"type": "http.request"}])
        await proxy.aclose()
    headers = dict(map(tuple, json.loads(body_of(sent))["headers"]))
    assert (headers["x-forwarded-proto"], headers["x-forwarded-port"]) == ("https", "8443")


async def test_client_disconnect_during_upload_closes_the_upstream_and_sends_nothing(tcp_server, head_reader, hooks):
    upstream = WatchesForClose(head_reader)

    async with tcp_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), hooks=hooks)
        scope = http_scope(headers=[(b"content-length", b"100")])
        messages = [{"type": "http.request", "body": b"x" * 10, "more_body": True}, {"type": "http.disconnect"}]
        assert await call(proxy, scope, messages) == []
        with anyio.fail_after(2):
            await upstream.closed.wait()
    assert hooks.pool[-1] == (0, 0)
    assert hooks.errors == []


async def test_upstream_dying_after_the_response_started_raises_response_aborted(tcp_server, head_reader):
    async def upstream(stream):
        await head_reader(stream, bytearray())
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")

    async with tcp_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), ProxyConfig())
        with pytest.raises(ResponseAborted):
            await call(proxy, http_scope(method="GET"), [{"type": "http.request"}])


async def test_lifespan_is_answered_when_served_directly():
    proxy = ReverseProxy(lambda: Upstream(port=1))
    sent = await call(proxy, {"type": "lifespan"}, [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    assert [message["type"] for message in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_other_scope_types_are_refused():
    with pytest.raises(ValueError, match="cannot serve ASGI scope type 'webtransport'"):
        await ReverseProxy(lambda: Upstream(port=1))({"type": "webtransport"}, None, None)  # type: ignore[arg-type]


async def test_an_http2_client_gone_before_its_body_started_sends_nothing_upstream(tcp_server):
    contacted = anyio.Event()

    async def upstream(stream):
        contacted.set()

    async with tcp_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port))
        assert await call(proxy, http_scope(http_version="2"), [{"type": "http.disconnect"}]) == []
        await proxy.aclose()
    assert not contacted.is_set()


async def test_a_chunked_upload_under_a_limit_whose_client_left_at_once_sends_nothing_upstream(tcp_server):
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
