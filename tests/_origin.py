"""A real HTTP upstream on loopback for the gateway's proxy tests: hypercorn serving a recording ASGI app in a
thread, where `fluxlit serve` would have its Streamlit child; and the parts `fluxlit serve` builds, pointed at it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fluxlit_supervisor import UpstreamState
from hypercorn.config import Config

from fluxlit import FluxLit
from fluxlit.config.settings import Settings
from fluxlit.runtime.serve_plan import ServePlan, build_serve_plan
from fluxlit.targets import LoadedTarget
from tests._hypercorn_thread import HypercornThread, loopback_listener
from tests._lifespan import answer_lifespan

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def app_with_a_page() -> FluxLit:
    """An app with a Streamlit side, so the plan has a proxy; add API routes to it as a test needs."""
    app = FluxLit(title="Proxied")

    @app.page("/")
    def home(st: Any) -> None:
        st.write("home")

    return app


def plan_ready_at(port: int | None, tmp_path: Path, app: FluxLit | None = None, **settings: Any) -> ServePlan:
    """What `fluxlit serve` builds for `app` (nothing started), with Streamlit published ready on `port` as the
    supervisor would publish its child; `port` None leaves it unpublished (starting)."""
    app = app if app is not None else app_with_a_page()
    plan = build_serve_plan(
        Settings(port=8123, state_file=str(tmp_path / "state.json"), **settings), LoadedTarget("app:app", app, app.api)
    )
    if port is not None:
        plan.hub.publish(UpstreamState("ready", host="127.0.0.1", port=port, pid=1, generation=1))
    return plan


@dataclass
class OriginRequest:
    """One request as the origin received it: what the proxy sent over the wire, decoded by hypercorn."""

    method: str
    raw_path: bytes
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
    client_port: int | None
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = [value.decode("latin-1") for key, value in self.headers if key == name.encode()]
        return ", ".join(values) if values else None


@dataclass
class LoopbackOrigin:
    """Serves on 127.0.0.1 (a free port) while its `with` block runs. By default every request is recorded in
    `requests` and answered 200 with JSON describing it; `app` replaces that answer (it is called after the
    request was recorded, with the body already read)."""

    app: App | None = None
    requests: list[OriginRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        listener = loopback_listener()
        self.port: int = listener.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{os.dup(listener.fileno())}"]  # hypercorn owns the duplicate
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        config.graceful_timeout = 1.0
        self._server = HypercornThread(self._serve, config, listener, name=f"origin-{self.port}")

    def __enter__(self) -> LoopbackOrigin:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    async def _serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = OriginRequest(
            scope["method"],
            scope["raw_path"],
            scope["query_string"],
            list(scope["headers"]),
            scope["client"][1] if scope["client"] else None,
        )
        self.requests.append(request)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            request.body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.app is not None:
            await self.app(scope, receive, send)
            return
        answer = json.dumps(
            {
                "method": request.method,
                "raw_path": request.raw_path.decode("latin-1"),
                "body_length": len(request.body),
                "body_sha256": hashlib.sha256(request.body).hexdigest(),
            }
        ).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})
