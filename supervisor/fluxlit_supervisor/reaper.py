"""PID 1 duty: reap adopted orphans without stealing our own child's exit status from asyncio."""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import signal
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from collections.abc import Set as AbstractSet

import anyio

logger = logging.getLogger("supervisor")

_MAX_REAPS_PER_SWEEP = 1024


class ManagedPids:
    """Pids whose exit status belongs to asyncio's child watcher, plus whether a spawn is in flight."""

    def __init__(self) -> None:
        self.pids: set[int] = set()
        self.spawning = 0

    @contextlib.contextmanager
    def spawn_in_progress(self) -> Generator[None, None, None]:
        """While forking, a fresh child that dies at once is not yet in `pids`: hold reaping off."""
        self.spawning += 1
        try:
            yield
        finally:
            self.spawning -= 1


class ReapAction(enum.Enum):
    REAP = "reap"  # an adopted orphan: collect it
    LEAVE = "leave"  # ours (or maybe ours): asyncio will collect it; stop this sweep


def reap_decision(pid: int, managed: AbstractSet[int], spawning: bool) -> ReapAction:
    """Decide what to do with a zombie found by a non-consuming peek."""
    if pid <= 0 or spawning or pid in managed:
        return ReapAction.LEAVE
    return ReapAction.REAP


def reap_orphans(managed: ManagedPids) -> list[int]:
    """Collect every zombie that is not ours, stopping at the first one that is (asyncio reaps it)."""
    reaped: list[int] = []
    for _ in range(_MAX_REAPS_PER_SWEEP):
        try:
            # WNOWAIT peeks: the status stays in place if the zombie turns out to be our own child.
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            break
        if info is None or info.si_pid == 0:
            break
        if reap_decision(info.si_pid, managed.pids, managed.spawning > 0) is ReapAction.LEAVE:
            break
        try:
            os.waitpid(info.si_pid, os.WNOHANG)
        except ChildProcessError:
            continue
        reaped.append(info.si_pid)
    return reaped


async def run_reaper(managed: ManagedPids, poll_interval: float = 1.0) -> None:
    """Sweep on every SIGCHLD, and every `poll_interval` anyway (uvloop keeps SIGCHLD for itself, and a
    zombie queued behind our own child is only visible once asyncio has collected that one)."""
    async with _sigchld_receiver() as signals:
        while True:
            reaped = reap_orphans(managed)
            if reaped:
                logger.debug("reaped orphans", extra={"reaped_pids": reaped})
            with anyio.move_on_after(poll_interval):
                if signals is None:
                    await anyio.sleep_forever()
                else:
                    await signals.__anext__()


@contextlib.asynccontextmanager
async def _sigchld_receiver() -> AsyncGenerator[AsyncIterator[signal.Signals] | None, None]:
    receiver: AsyncIterator[signal.Signals] | None = None
    with contextlib.ExitStack() as stack:
        try:
            receiver = stack.enter_context(anyio.open_signal_receiver(signal.SIGCHLD))
        except (RuntimeError, ValueError, NotImplementedError) as exc:
            logger.debug("no SIGCHLD handler; reaping by polling", extra={"error": str(exc)})
        yield receiver
