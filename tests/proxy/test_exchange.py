"""One exchange: an upstream that answers before the request ended must never carry the next request, and a
client body that breaks its own framing or mixes in other messages."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from fluxlit_proxy import ProxyConfig, ReverseProxy, Upstream

from tests.proxy._asgi import body_of, call, http_scope

pytestmark = pytest.mark.anyio

NO_SPARE = ProxyConfig(ws_spare_connection=False)


async def answered_early(proxy: ReverseProxy, headers: list[tuple[bytes, bytes]], last_body: bytes) -> int:
    """A request whose last body message arrives just as the client has the whole (early) response.

    The final message is handed over in the same turn the response ends, so the request side resumes with it
    while the exchange is being cancelled: the moment where the end of the request is framed but not written.
    """
    response_ended = anyio.Event()
    status = 0
    messages: list[Any] = [
        {"type": "http.request", "body": b"hello", "more_body": True},
        response_ended,
        {"type": "http.request", "body": last_body, "more_body": False},
    ]
    never = anyio.Event()

    async def receive() -> dict[str, Any]:
        while messages and isinstance(messages[0], anyio.Event):
            await messages.pop(0).wait()
        if messages:
            return messages.pop(0)  # type: ignore[no-any-return]
        await never.wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif not message.get("more_body", False):
            response_ended.set()

    with anyio.fail_after(5):
        await proxy(http_scope(headers=headers), receive, send)
    return status


async def plain_get(proxy: ReverseProxy) -> int:
    sent = await call(proxy, http_scope(method="GET"), [{"type": "http.request", "body": b"", "more_body": False}])
    return int(sent[0]["status"])


async def test_a_chunked_body_cut_short_by_an_early_answer_never_reaches_the_next_request(h11_upstream, tcp_server):
    """The end of a chunked body ("0\\r\\n\\r\\n") framed but not written: reusing the connection would make the
    next request head the rest of this body (Streamlit logged "Invalid HTTP request received")."""
    upstream = h11_upstream()
    async with tcp_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), NO_SPARE)
        assert await answered_early(proxy, [(b"transfer-encoding", b"chunked")], last_body=b"") == 405
        assert await plain_get(proxy) == 405
        await proxy.aclose()
    assert upstream.invalid == []
    assert [(conn, method) for conn, method, _ in upstream.requests] == [(0, "POST"), (1, "GET")]


async def test_a_request_that_ends_only_after_its_response_did_is_not_pooled(h11_upstream, tcp_server):
    """Answered early, a server may close instead of reading the rest (RFC 9112 9.3): never pool such a connection."""
    upstream = h11_upstream()
    async with tcp_server(upstream) as port:
        proxy = ReverseProxy(lambda: Upstream(port=port), NO_SPARE)
        assert await answered_early(proxy, [(b"content-length", b"5")], last_body=b"") == 405
        assert await plain_get(proxy) == 405
        await proxy.aclose()
    assert [(conn, method) for conn, method, _ in upstream.requests] == [(0, "POST"), (1, "GET")]


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


async def test_asgi_messages_other_than_body_parts_during_an_upload_are_skipped(asgi_server, origin_factory):
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
