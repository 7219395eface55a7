"""The unified ASGI app: `uvicorn app:app` / `hypercorn app:app` serve the gateway, and its lifespan runs the child.

The gateway is `fluxlit serve`'s (build_serve_plan), so routing, probes and refusals match. The ASGI server owns
the sockets, signals and workers; we own the Streamlit child, under the supervisor's restart policy. With several
server workers one child is shared: the first worker to lock the state file supervises it, the others follow it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import multiprocessing
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.abc
from fluxlit_supervisor import ChildSpec, Sidecar, SidecarStartError, StateHub, default_state_file_path

from fluxlit.asgi_types import ASGIApp, Message, Receive, Scope, Send
from fluxlit.config.sources import load_settings
from fluxlit.runtime.gateway_worker import StateFileStatus
from fluxlit.runtime.serve_plan import ServePlan, build_serve_plan
from fluxlit.targets import LoadedTarget, load_target

if TYPE_CHECKING:
    from fluxlit.app import FluxLit

APP_ENV = "FLUXLIT_APP"


def create_unified_app() -> UnifiedApp:
    """The app named by FLUXLIT_APP as a unified ASGI app, for `uvicorn --factory fluxlit.runtime:create_unified_app`.

    Raises RuntimeError when FLUXLIT_APP is unset."""
    return UnifiedApp(_target_from_env("create_unified_app"), sidecar=True)


def create_gateway_app() -> UnifiedApp:
    """The gateway of the app named by FLUXLIT_APP, starting no child: it fronts FLUXLIT_STREAMLIT_UPSTREAM (or its
    file), and answers 503 for pages without one. Raises RuntimeError when FLUXLIT_APP is unset."""
    return UnifiedApp(_target_from_env("create_gateway_app"), sidecar=False)


def unified_app(app: FluxLit) -> UnifiedApp:
    """`FluxLit.__call__`'s app: `app` itself served, its child named by FLUXLIT_APP (default `app:app`)."""
    return UnifiedApp(LoadedTarget(spec="", app=app, api=app.api), sidecar=True)


def _target_from_env(factory: str) -> LoadedTarget:
    spec = os.environ.get(APP_ENV, "").strip()
    if not spec:
        raise RuntimeError(f"{factory}() needs {APP_ENV}=module:attribute naming the app: try {APP_ENV}=app:app")
    return load_target(spec)


@dataclass
class _Run:
    """What the first call built: the plan, and whether this process supervises the child (holding its lock)."""

    plan: ServePlan
    sidecar: Sidecar | None
    lock_fd: int | None


class UnifiedApp:
    """An ASGI app: the gateway for HTTP and WebSocket scopes, the child's supervision for the lifespan scope."""

    def __init__(self, target: LoadedTarget, *, sidecar: bool, child: ChildSpec | None = None) -> None:
        """`child` replaces the Streamlit child the settings describe (another UI server on the port it is given)."""
        self._target = target
        self._wants_sidecar = sidecar
        self._child = child
        self._run: _Run | None = None

    @property
    def hub(self) -> StateHub:
        """This process's view of the child: its own supervision, or (a follower) nothing published."""
        return (self._run or self._build()).plan.hub

    @property
    def owns_child(self) -> bool:
        """Whether this process supervises the child (False: another worker does, or there is none)."""
        return (self._run or self._build()).sidecar is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        run = self._run or self._build()
        if scope["type"] == "lifespan":
            await self._lifespan(run, scope, receive, send)
            return
        await run.plan.gateway(scope, receive, send)

    def _build(self) -> _Run:
        app = self._target.app
        settings = load_settings(app_settings=app.settings if app is not None else None).settings
        target = self._target if self._target.spec else LoadedTarget(settings.target, app, self._target.api)
        # Pages and app.urls read these at request time, in this process and (through its env) in the child.
        os.environ["FLUXLIT_TRUST_PROXY"] = "1" if settings.trust_proxy else "0"
        os.environ["FLUXLIT_PUBLIC_BASE_URL"] = settings.public_base_url
        hub = StateHub()
        state_file = Path(settings.state_file) if settings.state_file else shared_state_file(settings.target)
        lock_fd = None
        if self._wants_sidecar and app is not None and not settings.streamlit_upstream:
            lock_fd = claim_child(state_file)
        if lock_fd is None and self._wants_sidecar and not settings.streamlit_upstream:
            # Another worker supervises the child: follow it through its state file, as `serve --workers` does.
            status = StateFileStatus(state_file, lambda: hub.stopping)
            plan = build_serve_plan(settings, target, hub=hub, upstream=status)
            self._run = _Run(plan, None, None)
            return self._run
        plan = build_serve_plan(settings, target, hub=hub)
        if self._child is not None and plan.child is not None:
            plan = dataclasses.replace(plan, child=self._child)
        sidecar = None
        if lock_fd is not None and plan.child is not None:
            sidecar = Sidecar(plan.child, plan.policy, hub, state_file=state_file, on_output=plan.on_child_output)
        self._run = _Run(plan, sidecar, lock_fd)
        return self._run

    async def _lifespan(self, run: _Run, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        async with anyio.create_task_group() as group:
            inner = InnerLifespan(run.plan.gateway, scope)
            try:
                if run.sidecar is not None:
                    await run.sidecar.start(group)
                await group.start(inner.run)
                reply = await inner.step("startup")
            except SidecarStartError as exc:
                reply = {"type": "lifespan.startup.failed", "message": str(exc)}
            if reply["type"] != "lifespan.startup.complete":
                await self._stop_sidecar(run)
                await send(reply)
                group.cancel_scope.cancel()
                return
            await send(reply)
            await receive()  # lifespan.shutdown
            await run.plan.before_stop()
            reply = await inner.step("shutdown")
            await self._stop_sidecar(run)
            await send(reply)
            group.cancel_scope.cancel()

    @staticmethod
    async def _stop_sidecar(run: _Run) -> None:
        if run.sidecar is not None:
            await run.sidecar.stop()
        if run.lock_fd is not None:
            os.close(run.lock_fd)  # releases the flock: a later run may own a child again
            run.lock_fd = None


class InnerLifespan:
    """The FastAPI app's own lifespan, driven by ours: its startup once the child is up, its shutdown before the
    child stops. An app that does not speak lifespan (it returns or raises) counts as a completed step."""

    def __init__(self, app: ASGIApp, scope: Scope) -> None:
        self._app = app
        self._scope = scope
        self._to_app, self._app_inbox = anyio.create_memory_object_stream[Message](2)
        self._app_outbox, self._from_app = anyio.create_memory_object_stream[Message](2)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        # A failure after its reply is the app's to log (Starlette does); one before it ends the stream: see step().
        with self._app_outbox, contextlib.suppress(Exception):
            await self._app(self._scope, self._app_inbox.receive, self._app_outbox.send)

    async def step(self, kind: str) -> Message:
        await self._to_app.send({"type": f"lifespan.{kind}"})
        try:
            return await self._from_app.receive()
        except anyio.EndOfStream:
            return {"type": f"lifespan.{kind}.complete"}


def shared_state_file(target: str) -> Path:
    """The state file the workers of one server share: keyed by the server's master process when this is one of
    its workers (multiprocessing's, as uvicorn and hypercorn use, or gunicorn's fork), else by this process."""
    worker = multiprocessing.parent_process() is not None or "gunicorn.arbiter" in sys.modules
    owner = os.getppid() if worker else os.getpid()
    key = hashlib.sha256(f"{os.getcwd()}\0{target}".encode()).hexdigest()[:12]
    return default_state_file_path().with_name(f"unified-{owner}-{key}.json")


def claim_child(state_file: Path) -> int | None:
    """Lock `<state file>.lock` for this process (the fd to keep open), or None when another process holds it."""
    fd = os.open(state_file.with_name(state_file.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
