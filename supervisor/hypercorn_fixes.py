"""A version-guarded patch to hypercorn's asyncio TCPServer: release a connection as soon as its client closes it.

hypercorn 0.18.0 (``hypercorn/asyncio/tcp_server.py``, ``TCPServer.run``) keeps the connection's task group
open after ``_read_data()`` returns on EOF while the idle task (a ``keep_alive_timeout`` timer started when the
connection went idle) is still pending, so every connection a client opens, uses once and closes holds a file
descriptor in CLOSE_WAIT until that timer fires. Stopping the idle task once the reader is done lets ``run``
close the socket at once; a request still in flight when the client half-closes runs on and its response is
sent (as before), then the connection closes instead of waiting as idle. Graceful shutdown never needs the idle
task of a connection whose client has gone.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

logger = logging.getLogger("supervisor")

# The hypercorn releases whose TCPServer internals this patch was read against and tested with.
VERIFIED_VERSIONS = ("0.18.0",)
_MARK = "_supervisor_releases_closed_connections"


def release_closed_connections() -> bool:
    """Patch hypercorn's asyncio TCPServer once (idempotent); False, with a debug log, when it cannot apply."""
    try:
        from hypercorn.asyncio.tcp_server import TCPServer
    except ImportError as exc:
        logger.debug("hypercorn connection-release patch skipped: %s", exc)
        return False
    read_data = getattr(TCPServer, "_read_data", None)
    if read_data is None or not callable(read_data):
        logger.debug("hypercorn connection-release patch skipped: TCPServer has no _read_data")
        return False
    if getattr(read_data, _MARK, False):
        return True
    version = _hypercorn_version()
    if version not in VERIFIED_VERSIONS:
        # Other releases may have fixed this upstream or moved the internals; the patch still only stops a
        # timer that exists, so it is applied, and the difference is recorded for whoever debugs it.
        logger.debug("hypercorn %s is not among the versions the connection-release patch was verified on", version)
    setattr(TCPServer, "_read_data", _stopping_idle_task_after(read_data))  # noqa: B010 - typed assignment is refused
    return True


class _NoIdleTimer:
    """Stands in for a connection's idle task once its client has closed: no timer is started again."""

    async def restart(self, task_group: object, action: Callable[[], Awaitable[None]]) -> None:
        return None

    async def stop(self) -> None:
        return None


_NO_IDLE_TIMER = _NoIdleTimer()


ReadData = Callable[[Any], Coroutine[Any, Any, None]]


def _stopping_idle_task_after(read_data: ReadData) -> ReadData:
    @functools.wraps(read_data)
    async def read_data_then_stop_idle_task(self: Any) -> None:
        await read_data(self)
        idle_task = getattr(self, "idle_task", None)
        if idle_task is not None:
            await idle_task.stop()
            # A response still in flight ends by marking the connection idle again, which would restart the
            # timer; no further request can arrive on a closed reader, so the connection closes when it ends.
            self.idle_task = _NO_IDLE_TIMER

    setattr(read_data_then_stop_idle_task, _MARK, True)
    return read_data_then_stop_idle_task


def _hypercorn_version() -> str:
    try:
        return importlib.metadata.version("hypercorn")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
