"""One supervised run: server, child, signals, notifications and state file in a single task group."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import os
import random
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from hypercorn.config import Config, Sockets

from fluxlit_supervisor.child import ChildSpec, ChildSupervisor
from fluxlit_supervisor.concurrency import Pulse, first_of
from fluxlit_supervisor.exit_codes import ExitCode
from fluxlit_supervisor.hypercorn_fixes import serve_asgi
from fluxlit_supervisor.notify import sd_notify, status_text, watchdog_interval
from fluxlit_supervisor.output import OutputCallback, log_child_output
from fluxlit_supervisor.policy import RestartPolicy
from fluxlit_supervisor.process_exit import AbandoningExecutor
from fluxlit_supervisor.reaper import ManagedPids, run_reaper
from fluxlit_supervisor.serve import (
    ASGIApp,
    BindError,
    InflightRequests,
    ServeConfig,
    bind_sockets,
    build_hypercorn_config,
    close_sockets,
    is_listening,
)
from fluxlit_supervisor.state import StateHub, UpstreamState
from fluxlit_supervisor.state_file import remove_state_file, write_state_file

if TYPE_CHECKING:
    from fluxlit_supervisor.early import PrestartedChild
    from fluxlit_supervisor.workers import WorkerPool, WorkerSpec

logger = logging.getLogger("supervisor")

_LISTEN_POLL_INTERVAL = 0.02
# The stop's budget is graceful_timeout + the child's stop_grace + 1 s, whatever the handlers do. At the drain
# deadline (at once on a second stop request) the in-flight requests are cancelled and the child is stopped
# alongside: hypercorn then answers or closes each connection and runs the lifespan shutdown within the
# wind-down; what still runs after it (a request that swallowed its cancellation) is cancelled with hypercorn
# itself, which skips the lifespan shutdown. Threads that outlive all this are left to `exit_process`.
_WIND_DOWN_TIMEOUT = 0.5
_FORCED_WIND_DOWN_TIMEOUT = 0.2
_CANCELLED_SERVER_TIMEOUT = 0.25
# Beyond the child's own stop_grace: SIGKILL delivery and reaping.
_CHILD_STOP_SLACK = 10.0


async def run_supervised(
    app: ASGIApp,
    serve: ServeConfig,
    child: ChildSpec | None,
    policy: RestartPolicy,
    hub: StateHub,
    state_file: Path | None,
    *,
    on_child_output: OutputCallback | None = None,
    before_stop: Callable[[], Awaitable[None]] | None = None,
    install_signal_handlers: bool = True,
    ready_callback: Callable[[], None] | None = None,
    prestarted: PrestartedChild | None = None,
    workers: WorkerSpec | None = None,
) -> int:
    """Serve `app` and supervise `child` until a stop or a terminal failure; returns an `ExitCode` value.

    Stop it programmatically with `hub.request_stop()` (twice to skip draining), restart the child with
    `hub.request_restart()`. Invalid configuration raises ValueError before anything starts.
    `prestarted` (from `supervisor.early.prestart`) becomes the child's first generation when `child` would start
    the very same command; otherwise it is stopped, and in every case it is reaped before this returns.
    `workers` (see `supervisor.workers`) adds processes serving the same public sockets next to this one.
    """
    config = build_hypercorn_config(serve)
    run = _SupervisedRun(
        app,
        serve,
        config,
        child,
        policy,
        hub,
        state_file,
        on_child_output=on_child_output or log_child_output,
        before_stop=before_stop,
        install_signal_handlers=install_signal_handlers,
        ready_callback=ready_callback,
        prestarted=prestarted,
        workers=workers,
    )
    return int(await run.run())


def run(
    app: ASGIApp,
    serve: ServeConfig,
    child: ChildSpec | None,
    policy: RestartPolicy,
    hub: StateHub,
    state_file: Path | None,
    **kwargs: Any,
) -> int:
    """Synchronous entry point: `run_supervised` on asyncio, with uvloop when it is installed.

    The loop's default executor (`asyncio.to_thread`) does not hold the loop's close for calls still running;
    end the process with `supervisor.exit_process(code)` so that no other thread holds the exit either.
    """
    options = {"use_uvloop": True} if importlib.util.find_spec("uvloop") is not None else {}
    main = functools.partial(run_supervised, app, serve, child, policy, hub, state_file, **kwargs)
    return anyio.run(_with_abandoning_executor, main, backend="asyncio", backend_options=options)


async def _with_abandoning_executor(main: Callable[[], Awaitable[int]]) -> int:
    # This loop is ours from its first moment, so no other default executor can have been made yet.
    asyncio.get_running_loop().set_default_executor(AbandoningExecutor(thread_name_prefix="asyncio"))
    return await main()


class _SupervisedRun:
    """The state of one `run_supervised` call; also the hub's `SupervisorControl`."""

    def __init__(
        self,
        app: ASGIApp,
        serve: ServeConfig,
        config: Config,
        child: ChildSpec | None,
        policy: RestartPolicy,
        hub: StateHub,
        state_file: Path | None,
        *,
        on_child_output: OutputCallback,
        before_stop: Callable[[], Awaitable[None]] | None,
        install_signal_handlers: bool,
        ready_callback: Callable[[], None] | None,
        prestarted: PrestartedChild | None = None,
        workers: WorkerSpec | None = None,
    ) -> None:
        self._serve = serve
        self._workers = workers
        self._worker_pool: WorkerPool | None = None
        self._config = config
        self._child = child
        self._policy = policy
        self._hub = hub
        self._state_file = state_file
        self._on_child_output = on_child_output
        self._before_stop = before_stop
        self._install_signal_handlers = install_signal_handlers
        self._ready_callback = ready_callback
        self._inflight = InflightRequests(app)
        self._managed = ManagedPids()
        # Ours from the start: the PID 1 reaper must leave its exit status to us even before it is adopted.
        self._prestarted = prestarted
        if prestarted is not None:
            self._managed.pids.add(prestarted.pid)
        self._exit_code: ExitCode | None = None
        self._stop_requested = anyio.Event()
        self._force = anyio.Event()
        self._restart = Pulse()
        self._serve_shutdown = anyio.Event()
        self._serve_done = anyio.Event()
        self._child_ready = anyio.Event()
        self._child_done = anyio.Event()
        self._serve_scope = anyio.CancelScope()
        self._child_scope = anyio.CancelScope()

    # SupervisorControl: what the hub (and our signal task) may ask.

    def request_stop(self) -> None:
        if self._stop_requested.is_set():
            if not self._force.is_set():
                logger.warning("second stop request: skipping the drain and killing the child")
            self._force.set()
            return
        self._finish(ExitCode.OK, "stop requested")

    def request_restart(self) -> None:
        if self._child is None or self._stop_requested.is_set():
            return
        self._restart.fire()

    def _finish(self, code: ExitCode, reason: str) -> None:
        """Record why the run ends (the first reason wins) and begin the stop."""
        if self._exit_code is not None:
            return
        self._exit_code = code
        logger.info("stopping: %s", reason, extra={"exit_code": int(code), "reason": reason})
        self._stop_requested.set()

    async def run(self) -> ExitCode:
        pending_stop = self._hub._attach(self)
        try:
            return await self._run(pending_stop)
        except Exception:
            logger.exception("supervisor failed", extra={"exit_code": int(ExitCode.INTERNAL_ERROR)})
            return ExitCode.INTERNAL_ERROR
        finally:
            if self._prestarted is not None:  # never handed to the child supervisor (e.g. the bind failed)
                await self._discard_prestarted(self._prestarted, "not adopted")
            self._hub._detach()
            if self._state_file is not None:
                remove_state_file(self._state_file)

    async def _discard_prestarted(self, early: PrestartedChild, why: str) -> None:
        self._prestarted = None
        logger.info(
            "stopping the child started early (pid %d): %s",
            early.pid,
            why,
            extra={"pid": early.pid, "reason": why},
        )
        with anyio.CancelScope(shield=True):  # a stop must never leave the child behind
            await early.terminate(self._child.stop_grace if self._child is not None else 0.0)
        self._managed.pids.discard(early.pid)

    async def _run(self, pending_stop: bool) -> ExitCode:
        async with anyio.create_task_group() as group:
            if self._install_signal_handlers:
                # First, before anything slow: as PID 1 an unhandled SIGTERM is simply dropped.
                await group.start(self._handle_signals)
            if pending_stop:
                self.request_stop()
            try:
                sockets = bind_sockets(self._config)
            except BindError as exc:
                logger.error(
                    "%s; is another server running there? Choose a free address or stop the other one",
                    exc,
                    extra={"bind": exc.bind, "exit_code": int(ExitCode.PORT_UNAVAILABLE)},
                )
                group.cancel_scope.cancel()
                return ExitCode.PORT_UNAVAILABLE
            try:
                if not self._tls_loads():
                    group.cancel_scope.cancel()
                    return ExitCode.INTERNAL_ERROR
                group.start_soon(self._serve_task, sockets)
                if self._workers is not None:
                    from fluxlit_supervisor.workers import WorkerPool  # only with --workers N: spares the rest

                    self._worker_pool = WorkerPool(self._workers, sockets, self._managed)
                    group.start_soon(self._worker_pool.run)
                early, self._prestarted = self._prestarted, None
                if early is not None and (self._child is None or not self._child.started(early)):
                    why = "no child is configured" if self._child is None else "its command or environment differs"
                    group.start_soon(self._discard_prestarted, early, why)
                    early = None
                if self._child is not None:
                    group.start_soon(self._child_task, self._child, early)
                else:
                    self._child_ready.set()
                    self._child_done.set()
                group.start_soon(self._announce_ready, sockets)
                interval = watchdog_interval(os.environ, os.getpid())
                if interval is not None:
                    group.start_soon(self._watchdog, interval)
                if os.getpid() == 1:
                    group.start_soon(run_reaper, self._managed)
                await self._stop_requested.wait()
                await self._shutdown()
                group.cancel_scope.cancel()
            finally:
                if self._worker_pool is not None:  # they hold the sockets too: gone before we return
                    await self._worker_pool.stop(force=True)
                close_sockets(sockets, self._config.bind)
        assert self._exit_code is not None
        return self._exit_code

    def _tls_loads(self) -> bool:
        """Load the certificate now: hypercorn would only do it after lifespan startup, with the child up."""
        try:
            self._config.create_ssl_context()
        except (OSError, ssl.SSLError) as exc:
            logger.error(
                "cannot load TLS certfile=%s keyfile=%s: %s",
                self._config.certfile,
                self._config.keyfile,
                exc,
                extra={"certfile": self._config.certfile, "exit_code": int(ExitCode.INTERNAL_ERROR)},
            )
            return False
        return True

    async def _handle_signals(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        wanted = [signal.SIGTERM, signal.SIGINT]
        if hasattr(signal, "SIGHUP"):
            wanted.append(signal.SIGHUP)
        with anyio.open_signal_receiver(*wanted) as signals:
            task_status.started()
            async for signum in signals:
                logger.info("received %s", signum.name, extra={"signal": signum.name})
                if signum == getattr(signal, "SIGHUP", None):
                    self.request_restart()
                else:
                    self.request_stop()

    async def _serve_task(self, sockets: Sockets) -> None:
        try:
            with self._serve_scope:
                await serve_asgi(self._inflight, self._config, sockets, self._serve_shutdown.wait)
            if not self._serve_shutdown.is_set():
                logger.error("the server stopped on its own", extra={"exit_code": int(ExitCode.INTERNAL_ERROR)})
                self._finish(ExitCode.INTERNAL_ERROR, "the server stopped on its own")
        except Exception as exc:
            if self._serve_scope.cancel_called:
                # hypercorn's cleanup raises its own errors when cancelled mid-drain; the stop goes on.
                logger.warning("the server was cut short: %r", exc, extra={"error": repr(exc)})
            else:
                logger.exception("the server failed: %s", exc, extra={"exit_code": int(ExitCode.INTERNAL_ERROR)})
                self._finish(ExitCode.INTERNAL_ERROR, f"the server failed: {exc!r}")
        finally:
            self._serve_done.set()

    async def _child_task(self, spec: ChildSpec, prestarted: PrestartedChild | None) -> None:
        supervisor = ChildSupervisor(
            spec,
            self._policy,
            publish=self._publish,
            restart=self._restart,
            is_stopping=self._stop_requested.is_set,
            hurry=self._force,
            managed=self._managed,
            on_output=self._on_child_output,
            on_ready=self._child_ready.set,
            rng=random.Random(),
            prestarted=prestarted,
        )
        try:
            with self._child_scope:
                code = await supervisor.run()
                self._finish(code, f"{spec.name} supervision ended with {code.name}")
        finally:
            self._child_done.set()

    async def _announce_ready(self, sockets: Sockets) -> None:
        """READY=1 and ready_callback, once: when the server listens and the child is ready."""
        while not is_listening(sockets):
            if self._serve_done.is_set():
                return
            await anyio.sleep(_LISTEN_POLL_INTERVAL)
        logger.info("serving", extra={"binds": list(self._config.bind)})
        await self._child_ready.wait()
        if self._stop_requested.is_set():
            return
        sd_notify("READY=1")
        if self._ready_callback is not None:
            try:
                self._ready_callback()
            except Exception:
                logger.exception("ready_callback failed")

    async def _watchdog(self, interval: float) -> None:
        # A task of the group, so a blocked event loop stops the pings and systemd notices.
        while True:
            if self._hub.current.state != "failed":
                sd_notify("WATCHDOG=1")
            await anyio.sleep(interval)

    async def _shutdown(self) -> None:
        """Drain until graceful_timeout (not at all when forced), then cut what runs and stop the processes."""
        self._hub._set_stopping()
        if self._worker_pool is not None:
            self._worker_pool.begin_stop()  # they turn not-ready and drain alongside our own server
        deadline = anyio.current_time() + self._serve.graceful_timeout
        if self._before_stop is not None and not self._force.is_set():
            with anyio.CancelScope(deadline=deadline):  # anyio.move_on_at needs 4.15
                try:
                    await first_of(self._before_stop, self._force.wait)
                except Exception:
                    logger.exception("before_stop failed; stopping anyway")
        sd_notify("STOPPING=1")
        # hypercorn's own drain timer (set once in build_hypercorn_config) runs past this deadline: ours decides.
        self._serve_shutdown.set()
        if not self._force.is_set():
            with anyio.CancelScope(deadline=deadline):
                await first_of(self._serve_done.wait, self._force.wait)
        if self._serve_done.is_set():
            await self._stop_processes(deadline)
            return
        # The requests are cut now, so nothing needs the child any more: it stops while the server winds down.
        async with anyio.create_task_group() as group:
            group.start_soon(self._cut_serving_short)
            group.start_soon(self._stop_processes, deadline)

    async def _stop_processes(self, deadline: float) -> None:
        async with anyio.create_task_group() as group:
            if self._worker_pool is not None:
                workers_stopped = anyio.Event()

                async def stop_workers(pool: WorkerPool) -> None:
                    await pool.stop(force=self._force.is_set())
                    workers_stopped.set()

                group.start_soon(stop_workers, self._worker_pool)
                # Workers proxy to the child while they drain; their drain began first, so it ends by our deadline.
                with anyio.CancelScope(deadline=deadline):
                    await first_of(workers_stopped.wait, self._force.wait)
            self._child_scope.cancel()
            grace = self._child.stop_grace if self._child is not None else 0.0
            with anyio.move_on_after(grace + _CHILD_STOP_SLACK):
                await self._child_done.wait()
        if self._child is not None and self._exit_code == ExitCode.OK:
            current = self._hub.current
            self._publish(
                UpstreamState(
                    state="stopped",
                    host=current.host,
                    generation=current.generation,
                    since=time.time(),
                    detail="stopped on request",
                )
            )

    async def _cut_serving_short(self) -> None:
        cancelled = self._inflight.cancel_all()
        reason = "second stop request" if self._force.is_set() else "graceful_timeout expired"
        logger.warning(
            "%s: cancelled %d in-flight request(s)",
            reason,
            cancelled,
            extra={"cancelled_requests": cancelled, "graceful_timeout": self._serve.graceful_timeout},
        )
        forced = self._force.is_set()
        wind_down = _FORCED_WIND_DOWN_TIMEOUT if forced else _WIND_DOWN_TIMEOUT
        with anyio.move_on_after(wind_down):
            # A second stop request arriving now shortens the wind-down to the forced one.
            await self._serve_done.wait() if forced else await first_of(self._serve_done.wait, self._hurried)
        if self._serve_done.is_set():
            return
        logger.warning(
            "the server did not finish winding down; cancelling it (lifespan shutdown is skipped)",
            extra={"wind_down": wind_down},
        )
        self._serve_scope.cancel()
        with anyio.move_on_after(_CANCELLED_SERVER_TIMEOUT):
            await self._serve_done.wait()
        if not self._serve_done.is_set():
            logger.error(
                "a request ignores cancellation; the stop waits for it (%d still running)",
                self._inflight.count,
                extra={"inflight": self._inflight.count},
            )

    async def _hurried(self) -> None:
        await self._force.wait()
        await anyio.sleep(_FORCED_WIND_DOWN_TIMEOUT)

    def _publish(self, state: UpstreamState) -> None:
        self._hub.publish(state)
        if self._state_file is not None:
            try:
                write_state_file(self._state_file, state)
            except OSError as exc:
                logger.warning(
                    "cannot write the state file %s: %s",
                    self._state_file,
                    exc,
                    extra={"state_file": str(self._state_file)},
                )
        sd_notify("STATUS=" + status_text(state.state, state.generation, state.pid, state.port, state.detail))
