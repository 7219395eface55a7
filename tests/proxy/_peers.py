"""What a test sees from either end of a proxied connection: the upstream's socket closing, the client's close code,
and conditions that have no event to wait on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
from websockets.exceptions import ConnectionClosed


async def saw_close(stream: anyio.abc.SocketStream, seen: anyio.Event) -> None:
    """Read and drop what the proxy sends on `stream` until it closes the connection, then set `seen` (5 s at most)."""
    try:
        with anyio.fail_after(5):
            while await stream.receive():
                pass
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        seen.set()


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
