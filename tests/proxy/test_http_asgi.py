"""The HTTP path driven directly through ASGI, for what an HTTP/1.1 server in front cannot produce."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from fluxlit_proxy import ProxyConfig, ReverseProxy, Upstream
from fluxlit_proxy.failures import ResponseAborted

pytestmark = pytest.mark.anyio


def http_scope(*, http_version: str = "1.1", method: str = "POST", headers=()) -> dict[str, Any]:
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


async def call(proxy: ReverseProxy, scope: dict[str, Any], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run one request: feed `messages`, then wait forever like a server whose client stays; collect sends."""
    pending = list(messages)
    sent: list[dict[str, Any]] = []
    never = anyio.Event()

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        await never.wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await proxy(scope, receive, send)
    return sent


def body_of(sent: list[dict[str, Any]]) -> bytes:
    return b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")


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
    upstream_saw_close = anyio.Event()

    async def upstream(stream):
        await head_reader(stream, bytearray())
        try:
            with anyio.fail_after(5):
                while await stream.receive():
                    pass
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            upstream_saw_close.set()

    async with tcp_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), hooks=hooks)
        scope = http_scope(headers=[(b"content-length", b"100")])
        messages = [{"type": "http.request", "body": b"x" * 10, "more_body": True}, {"type": "http.disconnect"}]
        assert await call(proxy, scope, messages) == []
        with anyio.fail_after(2):
            await upstream_saw_close.wait()
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
