"""What a test sees from either end of a proxied connection: the upstream's socket closing, the client's close code,
and conditions that have no event to wait on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
from websockets.exceptions import ConnectionClosed


class WatchesForClose:
    """A raw HTTP upstream that reads one request head, sends `reply` (nothing: it never answers), then reads and
    drops what comes until the proxy closes the connection, and sets `closed` (5 s at most)."""

    def __init__(self, head_reader: Callable[..., Awaitable[object]], reply: bytes = b"") -> None:
        self.head_reader = head_reader
        self.reply = reply
        self.closed = anyio.Event()

    async def __call__(self, stream: anyio.abc.SocketStream) -> None:
        await self.head_reader(stream, bytearray())
        if self.reply:
            await stream.send(self.reply)
        try:
            with anyio.fail_after(5):
                while await stream.receive():
                    pass
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            self.closed.set()


async def closed_code(ws: Any) -> tuple[int | None, str | None]:
    """Read until the connection closes; the close code and reason the client saw."""
    with anyio.fail_after(5):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            return ws.close_code, ws.close_reason


async def wait_until(condition: Callable[[], object], within: float = 5.0) -> None:
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - connections, budgets and allocations have no event to wait on
            await anyio.sleep(0.01)


class FirstEventAfter:
    """A raw WebSocket upstream that sends `messages`, then keeps the first event it receives: how the proxy ends
    its leg, in the tests that use it."""

    def __init__(self, *messages: Any) -> None:
        self.messages = messages
        self.received: list[Any] = []
        self.arrived = anyio.Event()

    async def __call__(self, conn: Any) -> None:
        for message in self.messages:
            await conn.send(message)
        self.received.append(await conn.next_event())
        self.arrived.set()
