"""Two small structured-concurrency tools: wait for the first of several waits, and a re-armable pulse."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio


async def first_of(*waits: Callable[[], Awaitable[object]]) -> int:
    """Run the waits concurrently; return the index of the first to finish and cancel the others."""
    winners: list[int] = []

    async with anyio.create_task_group() as group:

        async def run(index: int, wait: Callable[[], Awaitable[object]]) -> None:
            await wait()
            winners.append(index)
            group.cancel_scope.cancel()

        for index, wait in enumerate(waits):
            group.start_soon(run, index, wait)
    if not winners:
        # Only reachable when an enclosing scope cancelled us; let that cancellation surface here.
        await anyio.lowlevel.checkpoint()
        raise RuntimeError("first_of finished without a winner")
    return winners[0]


class Pulse:
    """A request that can be fired any time (sync) and is consumed by one waiter, then re-armed."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def fire(self) -> None:
        self._event.set()

    @property
    def fired(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()

    def consume(self) -> bool:
        """Re-arm; returns whether it had fired."""
        if not self._event.is_set():
            return False
        self._event = anyio.Event()
        return True
