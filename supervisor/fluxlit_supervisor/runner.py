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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from hypercorn.config import Config, Sockets

from fluxlit_supervisor.child import ChildSpec, ChildSupervisor
from fluxlit_supervisor.concurrency import Pulse
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
from fluxlit_supervisor.shutdown import ChildTask, ServerTask, Shutdown
from fluxlit_supervisor.state import StateHub, UpstreamState
from fluxlit_supervisor.state_file import publish_state, remove_state_file

if TYPE_CHECKING:
    from fluxlit_supervisor.early import PrestartedChild
    from fluxlit_supervisor.workers import WorkerPool, WorkerSpec

logger = logging.getLogger("supervisor")

_LISTEN_POLL_INTERVAL = 0.02


@dataclass(frozen=True)
class RunSpec:
    """Everything one supervised run is given: the app and how to serve it, the child and its policy, the hooks.

    `hub` is how to watch and steer the run: `hub.request_stop()` (twice to skip draining), `hub.request_restart()`.
    `prestarted` (from `fluxlit_supervisor.early.prestart`) becomes the child's first generation when `child` would
    start the very same command; otherwise it is stopped, and in every case it is reaped before the run returns.
    `workers` (see `fluxlit_supervisor.workers`) adds processes serving the same public sockets next to this one.
    """

    app: ASGIApp
    serve: ServeConfig
    child: ChildSpec | None = None
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    hub: StateHub = field(default_factory=StateHub)
    state_file: Path | None = None
    on_child_output: OutputCallback = log_child_output
    before_stop: Callable[[], Awaitable[None]] | None = None
    install_signal_handlers: bool = True
    ready_callback: Callable[[], None] | None = None
    prestarted: PrestartedChild | None = None
    workers: WorkerSpec | None = None


async def run_supervised(spec: RunSpec) -> int:
    """Serve `spec.app` and supervise `spec.child` until a stop or a terminal failure; returns an `ExitCode` value.

    Invalid configuration raises ValueError before anything starts.
    """
    return int(await _SupervisedRun(spec, build_hypercorn_config(spec.serve)).run())


def run(spec: RunSpec) -> int:
    """Synchronous entry point: `run_supervised` on asyncio, with uvloop when it is installed.

    The loop's default executor (`asyncio.to_thread`) does not hold the loop's close for calls still running;
    end the process with `fluxlit_supervisor.exit_process(code)` so that no other thread holds the exit either.
    """
    options = {"use_uvloop": True} if importlib.util.find_spec("uvloop") is not None else {}
    main = functools.partial(run_supervised, spec)
    return anyio.run(_with_abandoning_executor, main, backend="asyncio", backend_options=options)


async def _with_abandoning_executor(main: Callable[[], Awaitable[int]]) -> int:
    # This loop is ours from its first moment, so no other default executor can have been made yet.
    asyncio.get_running_loop().set_default_executor(AbandoningExecutor(thread_name_prefix="asyncio"))
    return await main()


class _SupervisedRun:
    """The state of one `run_supervised` call; also the hub's `SupervisorControl`."""

    def __init__(self, spec: RunSpec, config: Config) -> None:
        self._spec = spec
        self._child = spec.child
        self._hub = spec.hub
        self._state_file = spec.state_file
        self._config = config
        self._worker_pool: WorkerPool | None = None
        self._managed = ManagedPids()
        # Ours from the start: the PID 1 reaper must leave its exit status to us even before it is adopted.
        self._prestarted = spec.prestarted
        if spec.prestarted is not None:
            self._managed.pids.add(spec.prestarted.pid)
        self._exit_code: ExitCode | None = None
        self._stop_requested = anyio.Event()
        self._force = anyio.Event()
        self._restart = Pulse()
        self._server = ServerTask(
            InflightRequests(spec.app), shutdown=anyio.Event(), scope=anyio.CancelScope(), done=anyio.Event()
        )
        self._child_ready = anyio.Event()
        self._child_handle = ChildTask(
            anyio.CancelScope(), anyio.Event(), stop_grace=spec.child.stop_grace if spec.child is not None else 0.0
        )

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
            if self._spec.install_signal_handlers:
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
                if self._spec.workers is not None:
                    from fluxlit_supervisor.workers import WorkerPool  # only with --workers N: spares the rest

                    self._worker_pool = WorkerPool(self._spec.workers, sockets, self._managed)
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
                    self._child_handle.done.set()
                group.start_soon(self._announce_ready, sockets)
                interval = watchdog_interval(os.environ, os.getpid())
                if interval is not None:
                    group.start_soon(self._watchdog, interval)
                if os.getpid() == 1:
                    group.start_soon(run_reaper, self._managed)
                await self._stop_requested.wait()
                self._hub._set_stopping()
                await Shutdown(
                    self._server,
                    self._child_handle,
                    self._worker_pool,
                    self._force,
                    graceful_timeout=self._spec.serve.graceful_timeout,
                    before_stop=self._spec.before_stop,
                    on_processes_stopped=self._publish_stopped,
                ).run()
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
        server = self._server
        try:
            with server.scope:
                await serve_asgi(server.inflight, self._config, sockets, server.shutdown.wait)
            if not server.shutdown.is_set():
                logger.error("the server stopped on its own", extra={"exit_code": int(ExitCode.INTERNAL_ERROR)})
                self._finish(ExitCode.INTERNAL_ERROR, "the server stopped on its own")
        except Exception as exc:
            if server.scope.cancel_called:
                # hypercorn's cleanup raises its own errors when cancelled mid-drain; the stop goes on.
                logger.warning("the server was cut short: %r", exc, extra={"error": repr(exc)})
            else:
                logger.exception("the server failed: %s", exc, extra={"exit_code": int(ExitCode.INTERNAL_ERROR)})
                self._finish(ExitCode.INTERNAL_ERROR, f"the server failed: {exc!r}")
        finally:
            server.done.set()

    async def _child_task(self, spec: ChildSpec, prestarted: PrestartedChild | None) -> None:
        supervisor = ChildSupervisor(
            spec,
            self._spec.policy,
            publish=self._publish,
            restart=self._restart,
            is_stopping=self._stop_requested.is_set,
            hurry=self._force,
            managed=self._managed,
            on_output=self._spec.on_child_output,
            on_ready=self._child_ready.set,
            rng=random.Random(),
            prestarted=prestarted,
        )
        try:
            with self._child_handle.scope:
                code = await supervisor.run()
                self._finish(code, f"{spec.name} supervision ended with {code.name}")
        finally:
            self._child_handle.done.set()

    async def _announce_ready(self, sockets: Sockets) -> None:
        """READY=1 and ready_callback, once: when the server listens and the child is ready."""
        while not is_listening(sockets):
            if self._server.done.is_set():
                return
            await anyio.sleep(_LISTEN_POLL_INTERVAL)
        logger.info("serving", extra={"binds": list(self._config.bind)})
        await self._child_ready.wait()
        if self._stop_requested.is_set():
            return
        sd_notify("READY=1")
        if self._spec.ready_callback is not None:
            try:
                self._spec.ready_callback()
            except Exception:
                logger.exception("ready_callback failed")

    async def _watchdog(self, interval: float) -> None:
        # A task of the group, so a blocked event loop stops the pings and systemd notices.
        while True:
            if self._hub.current.state != "failed":
                sd_notify("WATCHDOG=1")
            await anyio.sleep(interval)

    def _publish_stopped(self) -> None:
        if self._child is None or self._exit_code != ExitCode.OK:
            return
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

    def _publish(self, state: UpstreamState) -> None:
        publish_state(self._hub, self._state_file, state)
        sd_notify("STATUS=" + status_text(state.state, state.generation, state.pid, state.port, state.detail))
