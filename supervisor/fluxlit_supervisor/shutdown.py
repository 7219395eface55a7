"""The stop of one run: drain until graceful_timeout (not at all when forced), then cut what runs, stop the processes.

Owns the order and the deadlines of a stop; the runner owns the tasks being stopped and hands them over here.
The stop's budget is graceful_timeout + the child's stop_grace + 1 s, whatever the handlers do. At the drain
deadline (at once on a second stop request) the in-flight requests are cancelled and the child is stopped
alongside: hypercorn then answers or closes each connection and runs the lifespan shutdown within the
wind-down; what still runs after it (a request that swallowed its cancellation) is cancelled with hypercorn
itself, which skips the lifespan shutdown. Threads that outlive all this are left to `exit_process`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from fluxlit_supervisor.concurrency import first_of
from fluxlit_supervisor.notify import sd_notify
from fluxlit_supervisor.serve import InflightRequests

if TYPE_CHECKING:
    from fluxlit_supervisor.workers import WorkerPool

logger = logging.getLogger("supervisor")

_WIND_DOWN_TIMEOUT = 0.5
_FORCED_WIND_DOWN_TIMEOUT = 0.2
_CANCELLED_SERVER_TIMEOUT = 0.25
# Beyond the child's own stop_grace: SIGKILL delivery and reaping.
_CHILD_STOP_SLACK = 10.0


@dataclass(frozen=True)
class ServerTask:
    """The public server's task as a stop sees it: its requests, its shutdown trigger, its scope and its end."""

    inflight: InflightRequests
    shutdown: anyio.Event  # set: hypercorn stops accepting and drains
    scope: anyio.CancelScope  # cancelled: hypercorn itself is cut short (no lifespan shutdown)
    done: anyio.Event


@dataclass(frozen=True)
class ChildTask:
    """The child supervision task: cancelling its scope stops the child, within its stop_grace."""

    scope: anyio.CancelScope
    done: anyio.Event
    stop_grace: float


@dataclass(frozen=True)
class Shutdown:
    """One stop, begun once the run's exit code is decided; `run()` returns when nothing it stops runs any more."""

    server: ServerTask
    child: ChildTask
    workers: WorkerPool | None
    force: anyio.Event  # set by a second stop request: skip the drain
    graceful_timeout: float
    before_stop: Callable[[], Awaitable[None]] | None
    on_processes_stopped: Callable[[], None]

    async def run(self) -> None:
        """Drain until graceful_timeout (not at all when forced), then cut what runs and stop the processes."""
        if self.workers is not None:
            self.workers.begin_stop()  # they turn not-ready and drain alongside our own server
        deadline = anyio.current_time() + self.graceful_timeout
        if self.before_stop is not None and not self.force.is_set():
            with anyio.CancelScope(deadline=deadline):  # anyio.move_on_at needs 4.15
                try:
                    await first_of(self.before_stop, self.force.wait)
                except Exception:
                    logger.exception("before_stop failed; stopping anyway")
        sd_notify("STOPPING=1")
        # hypercorn's own drain timer (set once in build_hypercorn_config) runs past this deadline: ours decides.
        self.server.shutdown.set()
        if not self.force.is_set():
            with anyio.CancelScope(deadline=deadline):
                await first_of(self.server.done.wait, self.force.wait)
        if self.server.done.is_set():
            await self._stop_processes(deadline)
            return
        # The requests are cut now, so nothing needs the child any more: it stops while the server winds down.
        async with anyio.create_task_group() as group:
            group.start_soon(self._cut_serving_short)
            group.start_soon(self._stop_processes, deadline)

    async def _stop_processes(self, deadline: float) -> None:
        async with anyio.create_task_group() as group:
            if self.workers is not None:
                workers_stopped = anyio.Event()

                async def stop_workers(pool: WorkerPool) -> None:
                    await pool.stop(force=self.force.is_set())
                    workers_stopped.set()

                group.start_soon(stop_workers, self.workers)
                # Workers proxy to the child while they drain; their drain began first, so it ends by our deadline.
                with anyio.CancelScope(deadline=deadline):
                    await first_of(workers_stopped.wait, self.force.wait)
            self.child.scope.cancel()
            with anyio.move_on_after(self.child.stop_grace + _CHILD_STOP_SLACK):
                await self.child.done.wait()
        self.on_processes_stopped()

    async def _cut_serving_short(self) -> None:
        server = self.server
        cancelled = server.inflight.cancel_all()
        forced = self.force.is_set()
        reason = "second stop request" if forced else "graceful_timeout expired"
        logger.warning(
            "%s: cancelled %d in-flight request(s)",
            reason,
            cancelled,
            extra={"cancelled_requests": cancelled, "graceful_timeout": self.graceful_timeout},
        )
        wind_down = _FORCED_WIND_DOWN_TIMEOUT if forced else _WIND_DOWN_TIMEOUT
        with anyio.move_on_after(wind_down):
            # A second stop request arriving now shortens the wind-down to the forced one.
            await server.done.wait() if forced else await first_of(server.done.wait, self._hurried)
        if server.done.is_set():
            return
        logger.warning(
            "the server did not finish winding down; cancelling it (lifespan shutdown is skipped)",
            extra={"wind_down": wind_down},
        )
        server.scope.cancel()
        with anyio.move_on_after(_CANCELLED_SERVER_TIMEOUT):
            await server.done.wait()
        if not server.done.is_set():
            logger.error(
                "a request ignores cancellation; the stop waits for it (%d still running)",
                server.inflight.count,
                extra={"inflight": server.inflight.count},
            )

    async def _hurried(self) -> None:
        await self.force.wait()
        await anyio.sleep(_FORCED_WIND_DOWN_TIMEOUT)
