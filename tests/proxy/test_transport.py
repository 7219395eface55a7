"""Looking at an idle upstream stream without reading it: open and quiet, closed by the peer, closed by us."""

from __future__ import annotations

import anyio
import pytest
from fluxlit_proxy import Upstream
from fluxlit_proxy.transport import ClosePeek, describe

pytestmark = pytest.mark.anyio


async def eventually(peek: ClosePeek) -> bool:
    with anyio.move_on_after(5):
        while not peek():  # noqa: ASYNC110 - a socket's state has no event to wait on
            await anyio.sleep(0.01)
    return peek()


async def test_a_quiet_open_connection_is_usable_and_a_peer_close_is_seen_without_reading(tcp_server) -> None:
    close = anyio.Event()

    async def upstream(stream):
        await close.wait()  # then the server's `async with stream` sends the FIN

    async with tcp_server(upstream) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        peek = ClosePeek(stream)
        assert peek() is False
        close.set()
        assert await eventually(peek) is True
        with pytest.raises(anyio.EndOfStream):  # the end of stream is still there to read: nothing consumed
            await stream.receive()


async def test_a_connection_closed_on_our_side_counts_as_gone(tcp_server) -> None:
    async def upstream(stream):
        await anyio.sleep(5)

    async with tcp_server(upstream) as port:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        peek = ClosePeek(stream)
        assert peek() is False
        await anyio.aclose_forcefully(stream)
        assert peek() is True


def test_an_upstream_is_described_by_its_address_or_its_socket_path() -> None:
    assert describe(Upstream(unix_path="/run/app.sock")) == "unix:/run/app.sock"
    assert describe(Upstream(port=8501)) == "127.0.0.1:8501"
