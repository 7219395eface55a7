"""The upstream WebSocket handshake written and read by hand, its h11 fallback, and the spare connection."""

from __future__ import annotations

import re

import anyio
import anyio.lowlevel
import h11
import pytest
from fluxlit_proxy import ProxyConfig, ReverseProxy, Upstream
from fluxlit_proxy.failures import Failure, UpstreamError
from fluxlit_proxy.spare import SpareConnection, spare_usable
from fluxlit_proxy.transport import readable_or_closed
from fluxlit_proxy.ws_handshake import (
    accept_token,
    check_switch,
    handshake_request,
    may_retry_handshake,
    split_switching_head,
    upstream_host_value,
)
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from wsproto.events import Request

from tests.proxy._asgi import NO_SPARE, ScriptedServer, first_status, reset_on_close, websocket_scope
from tests.proxy._peers import wait_until

RFC_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3
RFC_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_accept_token_is_the_rfc_6455_example() -> None:
    assert accept_token(RFC_KEY) == RFC_ACCEPT


def test_the_request_carries_wsprotos_fields_then_the_clients() -> None:
    request = Request(
        host="app.example:8000",
        target="/_stcore/stream?x=1",
        subprotocols=["streamlit", "xsrf"],
        extra_headers=[(b"cookie", b"a=1"), (b"x-forwarded-for", b"10.0.0.1")],
    )
    assert handshake_request(request, RFC_KEY) == (
        b"GET /_stcore/stream?x=1 HTTP/1.1\r\n"
        b"Host: app.example:8000\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: streamlit, xsrf\r\n"
        b"cookie: a=1\r\n"
        b"x-forwarded-for: 10.0.0.1\r\n"
        b"\r\n"
    )
    assert b"Sec-WebSocket-Protocol" not in handshake_request(Request(host="h", target="/"), RFC_KEY)


@pytest.mark.parametrize(
    ("target", "extra"),
    [
        pytest.param("/a b", [], id="space in target"),
        pytest.param("/", [(b"x-bad", b"one\r\ntwo")], id="CRLF in value"),
        pytest.param("/", [(b"x-bad", b"nul\x00")], id="NUL in value"),
        pytest.param("/", [(b"bad name", b"v")], id="space in name"),
        pytest.param("/", [(b"x-pad", b" leading")], id="leading whitespace"),
    ],
)
def test_the_request_refuses_what_h11_would(target: str, extra: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(h11.LocalProtocolError):
        handshake_request(Request(host="h", target=target, extra_headers=extra), RFC_KEY)


def test_the_request_offers_no_extensions() -> None:
    with pytest.raises(ValueError, match="no WebSocket extensions"):
        handshake_request(Request(host="h", target="/", extensions=["permessage-deflate"]), RFC_KEY)


@pytest.mark.parametrize(
    ("head", "fields"),
    [
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-A:  b c \t",
            [(b"upgrade", b"websocket"), (b"connection", b"Upgrade"), (b"x-a", b"b c")],
        ),
        (b"HTTP/1.1 101\r\nUpgrade: websocket", [(b"upgrade", b"websocket")]),
        (b"HTTP/1.1 101 ", []),
        (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0", None),
        (b"HTTP/1.0 101 Switching Protocols", None),
        (b"HTTP/1.1 1010 Nope", None),
        (b"HTTP/1.1 101 OK\r\nbad name: v", None),
        (b"HTTP/1.1 101 OK\r\nno-colon", None),
        (b"HTTP/1.1 101 OK\r\nX-A: 1\r\n folded", None),
        (b"HTTP/1.1 101 OK\r\nX-A: nul\x00", None),
        (b"HTTP/1.1 101 Switch\x01ing", None),
    ],
)
def test_only_a_strictly_shaped_101_is_split_by_hand(head: bytes, fields: list[tuple[bytes, bytes]] | None) -> None:
    assert split_switching_head(head) == fields


GOOD = [(b"upgrade", b"WebSocket"), (b"connection", b"keep-alive, Upgrade"), (b"sec-websocket-accept", RFC_ACCEPT)]


def test_a_valid_switch_names_the_subprotocol_and_keeps_the_other_headers() -> None:
    fields = [*GOOD, (b"sec-websocket-protocol", b"streamlit"), (b"Set-Cookie", b"a=1")]
    assert check_switch(fields, RFC_KEY, ["streamlit"]) == ("streamlit", [(b"set-cookie", b"a=1")])
    assert check_switch(GOOD, RFC_KEY, []) == (None, [])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([f for f in GOOD if f[0] != b"connection"], "Connection: Upgrade"),
        ([*GOOD[:1], (b"connection", b"keep-alive"), GOOD[2]], "Connection: Upgrade"),
        ([f for f in GOOD if f[0] != b"upgrade"], "Upgrade: websocket"),
        ([*GOOD[:2], (b"sec-websocket-accept", b"wrong")], "bad accept token"),
        ([*GOOD, (b"sec-websocket-protocol", b"other")], "unrecognized subprotocol other"),
        ([*GOOD, (b"sec-websocket-extensions", b"permessage-deflate")], "never offered"),
    ],
)
def test_an_invalid_switch_is_a_protocol_failure(fields: list[tuple[bytes, bytes]], message: str) -> None:
    with pytest.raises(UpstreamError, match=re.escape(message)) as failed:
        check_switch(fields, RFC_KEY, ["streamlit"])
    assert failed.value.failure is Failure.PROTOCOL


@pytest.mark.parametrize(
    ("from_spare", "failure", "received", "retry"),
    [
        (True, Failure.RESET, 0, True),
        (True, Failure.RESET, 12, False),
        (True, Failure.PROTOCOL, 0, False),
        (True, Failure.READ_TIMEOUT, 0, False),
        (False, Failure.RESET, 0, False),
    ],
)
def test_only_a_spare_closed_before_any_answer_is_retried(
    from_spare: bool, failure: Failure, received: int, retry: bool
) -> None:
    assert may_retry_handshake(from_spare=from_spare, failure=failure, bytes_received=received) is retry


@pytest.mark.parametrize(
    ("same", "age", "gone", "usable"),
    [(True, 1.0, False, True), (False, 1.0, False, False), (True, 30.0, False, False), (True, 1.0, True, False)],
)
def test_spare_usable(same: bool, age: float, gone: bool, usable: bool) -> None:
    assert spare_usable(same_upstream=same, age=age, max_age=30.0, readable_or_closed=gone) is usable


# ------------------------------------------------------------------------------------ against raw upstreams


async def answer(stream: anyio.abc.SocketStream, head_reader, reply: bytes) -> None:
    """Read one request head and send `reply` with the right accept token in place of {accept}.

    A spare connection the proxy closes unused sends no request: nothing to answer then."""
    head = await head_reader(stream, bytearray())
    if head is None:
        return
    key = re.search(rb"Sec-WebSocket-Key: (\S+)", head)
    assert key is not None
    await stream.send(reply.replace(b"{accept}", accept_token(key.group(1))))


SWITCH = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: {accept}\r\n\r\n"
)
BAD_ACCEPT = b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n"


@pytest.mark.anyio
async def test_a_101_with_bare_line_feeds_is_read_by_h11(stack_factory, tcp_server, head_reader) -> None:
    async def upstream(stream):
        await answer(stream, head_reader, b"HTTP/1.1 101 OK\nUpgrade: websocket\nConnection: Upgrade\n"
                     b"Sec-WebSocket-Accept: {accept}\n\n\x81\x02hi")  # fmt: skip
        await anyio.sleep(5)

    async with (
        tcp_server(upstream) as port,
        stack_factory(resolve=lambda: Upstream(port=port)) as stack,
        connect(stack.ws_url + "/") as ws,
    ):
        with anyio.fail_after(5):
            assert await ws.recv() == "hi"  # the frame that came with the 101 is relayed


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reply", "status", "body"),
    [
        (b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nno!\r\n0\r\n\r\n", 403, b"no!"),
        (b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\nshort", 404, b"short"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\nuntil the close", 400, b"until the close"),
    ],
)
async def test_a_refusal_is_relayed_with_its_body(
    stack_factory, tcp_server, head_reader, reply: bytes, status: int, body: bytes
) -> None:
    async def upstream(stream):
        await answer(stream, head_reader, reply)

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port)) as stack:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(stack.ws_url + "/"):
                pass
        assert (refused.value.response.status_code, refused.value.response.body) == (status, body)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        pytest.param(b"", "reset", id="closed at once"),
        pytest.param(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n", "reset", id="cut in the head"),
        pytest.param(b"SSH-2.0-OpenSSH\r\n\r\n", "protocol", id="not HTTP"),
        pytest.param(
            b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n",
            "protocol",
            id="bad accept",
        ),
    ],
)
async def test_a_broken_answer_is_a_502(stack_factory, tcp_server, head_reader, hooks, reply: bytes, kind: str) -> None:
    async def upstream(stream):
        await answer(stream, head_reader, reply)

    config = ProxyConfig(ws_spare_connection=False)
    async with (
        tcp_server(upstream) as port,
        stack_factory(resolve=lambda: Upstream(port=port), hooks=hooks, config=config) as stack,
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(stack.ws_url + "/"):
                pass
        assert refused.value.response.status_code == 502
        assert hooks.errors == [kind]


@pytest.mark.anyio
async def test_an_informational_answer_other_than_101_is_a_refusal(stack_factory, tcp_server, head_reader) -> None:
    async def upstream(stream):
        await answer(stream, head_reader, b"HTTP/1.1 100 Continue\r\n\r\n")

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port)) as stack:
        with pytest.raises(InvalidStatus):
            async with connect(stack.ws_url + "/"):
                pass


@pytest.mark.anyio
async def test_the_next_handshake_goes_over_the_spare_opened_after_the_first(
    stack_factory, tcp_server, head_reader
) -> None:
    connections: list[int] = []
    handshakes: list[int] = []

    async def upstream(stream):
        connections.append(len(connections))
        number = connections[-1]
        await answer(stream, head_reader, SWITCH)
        handshakes.append(number)
        await anyio.sleep(10)

    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port)) as stack:
        async with connect(stack.ws_url + "/"):
            await wait_until(lambda: len(connections) >= 2)  # the spare, opened in the background
        async with connect(stack.ws_url + "/"):
            pass
        assert handshakes == [0, 1]  # the second handshake used the spare, not a third connection
        await wait_until(lambda: len(connections) >= 3)  # and the next spare follows


@pytest.mark.anyio
async def test_a_spare_the_upstream_closed_is_replaced_by_a_fresh_connection(
    stack_factory, tcp_server, head_reader, hooks
) -> None:
    connections: list[int] = []

    async def upstream(stream):
        connections.append(len(connections))
        if connections[-1] == 1:
            return  # the spare: closed while idle, as servers with an idle timeout do
        await answer(stream, head_reader, SWITCH)
        await anyio.sleep(10)

    async with (
        tcp_server(upstream) as port,
        stack_factory(resolve=lambda: Upstream(port=port), hooks=hooks) as stack,
    ):
        async with connect(stack.ws_url + "/"):
            pass
        await wait_until(lambda: len(connections) >= 2)
        await anyio.sleep(0.1)  # the close reaches the proxy's socket
        async with connect(stack.ws_url + "/"):
            pass
        assert hooks.errors == []
        assert connections[:3] == [0, 1, 2]


@pytest.mark.anyio
async def test_a_spare_closed_as_the_handshake_arrives_is_retried_once_on_a_fresh_connection(
    stack_factory, tcp_server, head_reader, hooks
) -> None:
    connections: list[int] = []

    async def upstream(stream):
        connections.append(len(connections))
        if connections[-1] == 1:
            await head_reader(stream, bytearray())  # the spare: closed without a word once the request came
            return
        await answer(stream, head_reader, SWITCH)
        await anyio.sleep(10)

    async with (
        tcp_server(upstream) as port,
        stack_factory(resolve=lambda: Upstream(port=port), hooks=hooks) as stack,
    ):
        async with connect(stack.ws_url + "/"):
            pass
        await wait_until(lambda: len(connections) >= 2)
        async with connect(stack.ws_url + "/"):
            pass
        assert hooks.errors == []
        assert connections[:3] == [0, 1, 2]


@pytest.mark.anyio
async def test_without_the_spare_option_no_connection_is_opened_ahead(stack_factory, tcp_server, head_reader) -> None:
    connections: list[int] = []

    async def upstream(stream):
        connections.append(len(connections))
        await answer(stream, head_reader, SWITCH)
        await anyio.sleep(10)

    config = ProxyConfig(ws_spare_connection=False)
    async with tcp_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port), config=config) as stack:
        async with connect(stack.ws_url + "/"):
            pass
        await anyio.sleep(0.2)
        assert connections == [0]


@pytest.mark.anyio
async def test_a_spare_for_another_upstream_is_closed_not_used(tcp_server) -> None:
    accepted: list[int] = []

    async def upstream(stream):
        accepted.append(1)
        await anyio.sleep(10)

    spare = SpareConnection(ProxyConfig())
    async with tcp_server(upstream) as port:
        await spare.refill(Upstream(port=port))
        assert spare.ready
        assert await spare.take(Upstream(port=port + 1)) is None
        assert not spare.ready
        await spare.refill(Upstream(port=port))
        stream = await spare.take(Upstream(port=port))
        assert stream is not None
        await stream.aclose()


@pytest.mark.anyio
async def test_a_spare_is_not_opened_when_the_upstream_refuses_nor_after_close(refused_port: int) -> None:
    refused = Upstream(port=refused_port)
    spare = SpareConnection(ProxyConfig())
    await spare.refill(refused)
    assert not spare.ready
    await spare.aclose()
    await spare.refill(refused)
    assert not spare.ready


@pytest.mark.anyio
async def test_closing_the_proxy_closes_its_spare(tcp_server) -> None:
    closed = anyio.Event()

    async def upstream(stream):
        try:
            await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            closed.set()

    spare = SpareConnection(ProxyConfig())
    async with tcp_server(upstream) as port:
        await spare.refill(Upstream(port=port))
        await spare.aclose()
        with anyio.fail_after(5):
            await closed.wait()
        assert not spare.ready


@pytest.mark.anyio
async def test_a_connect_finishing_after_close_is_not_kept(tcp_server) -> None:
    async def upstream(stream):
        await anyio.sleep(10)

    spare = SpareConnection(ProxyConfig())
    async with tcp_server(upstream) as port, anyio.create_task_group() as group:
        group.start_soon(spare.refill, Upstream(port=port))
        await anyio.lowlevel.checkpoint()  # the refill is connecting
        await spare.aclose()
    assert not spare.ready


@pytest.mark.anyio
async def test_readable_or_closed_sees_data_and_eof_without_reading(tcp_server) -> None:
    go = anyio.Event()

    async def upstream(stream):
        await go.wait()
        await stream.send(b"x")

    async with tcp_server(upstream) as port:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        async with stream:
            assert not readable_or_closed(stream)
            go.set()
            await wait_until(lambda: readable_or_closed(stream))
            assert await stream.receive() == b"x"  # nothing was consumed


def test_a_host_that_idna_cannot_encode_is_replaced_by_the_upstream_address() -> None:
    assert upstream_host_value(b"bad..label", Upstream(port=8501)) == "127.0.0.1:8501"
    assert upstream_host_value("bücher.example".encode("latin-1"), Upstream(port=8501)) == "127.0.0.1:8501"
    assert upstream_host_value(None, Upstream(unix_path="/run/st.sock")) == "localhost"


@pytest.mark.anyio
async def test_an_upstream_that_never_answers_the_handshake_is_504(tcp_server, head_reader, hooks):
    async def upstream(stream):
        await head_reader(stream, bytearray())
        await anyio.sleep(5)

    async with tcp_server(upstream) as port:
        config = ProxyConfig(ws_open_timeout=0.2, **NO_SPARE)
        assert await first_status(ReverseProxy(lambda: Upstream(port=port), config, hooks)) == 504
    assert hooks.errors == ["timeout"]


@pytest.mark.anyio
@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_an_upstream_that_closes_during_the_handshake_is_502(tcp_server, head_reader, hooks, reset):
    async def upstream(stream):
        await head_reader(stream, bytearray())
        if reset:
            reset_on_close(stream)
        await stream.aclose()

    async with tcp_server(upstream) as port:
        assert await first_status(ReverseProxy(lambda: Upstream(port=port), ProxyConfig(**NO_SPARE), hooks)) == 502
    assert hooks.errors == ["reset"]


@pytest.mark.anyio
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
