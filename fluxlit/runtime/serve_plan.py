"""`fluxlit serve`: compose the gateway, the proxy and the Streamlit child spec, and hand them to the supervisor."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fluxlit.config.settings import Settings
from fluxlit.config.sources import ResolvedSettings, replace
from fluxlit.errors import ConfigError
from fluxlit.gateway.upstream_status import UpstreamStatus, upstream_status_from
from fluxlit.runtime.worker_handoff import handoff_environment
from fluxlit.streamlit.command import streamlit_argv, streamlit_max_message_bytes
from fluxlit.targets import target_exists

# `fluxlit serve` imports this module before it starts Streamlit early and before the target, so the heavy parts are
# imported inside the functions that need them, after that start (python -X importtime here: the gateway with
# FastAPI ~0.7 s, fluxlit_proxy ~0.2 s, the supervisor's runner with hypercorn and anyio ~0.2 s, metrics ~0.1 s).
if TYPE_CHECKING:
    from fluxlit_supervisor import StateHub, WorkerSpec
    from fluxlit_supervisor.early import PrestartedChild

    from fluxlit.gateway.upstream_status import UpstreamStatusSource
    from fluxlit.targets import LoadedTarget


@dataclass(frozen=True)
class EarlyChild:
    """Streamlit started before the target is imported, and the gateway port its environment names."""

    child: PrestartedChild
    port: int


@contextlib.contextmanager
def streamlit_started_early(resolved: ResolvedSettings) -> Generator[EarlyChild | None, None, None]:
    """Start Streamlit now, so it boots while this process imports the target, FastAPI and the gateway.

    Its command and environment come from the settings known before the import; the supervisor adopts it only
    when the final plan (with the app's own settings and streamlit_run_args) would start exactly the same, and
    stops it otherwise. It is stopped, by PID and reaped, on every path that leaves this block without that
    (a target that fails to import, a bad setting, a port in use). None when it cannot start early: under TLS
    (the loopback port is chosen with the plan), or when the target is not found without importing it.
    """
    settings = resolved.settings
    early: EarlyChild | None = None
    if not settings.certfile and target_exists(settings.target):
        settings = _with_concrete_port(settings)
        try:
            env = child_environment(settings)
        except ConfigError:
            env = None  # every bind is a unix socket: the plan reports it
        if env is not None:
            from fluxlit_supervisor.early import prestart

            root = settings.root_path
            child = prestart(lambda port: streamlit_argv(port, root_path=root), env)
            early = EarlyChild(child, settings.port) if child is not None else None
    try:
        yield early
    finally:
        if early is not None:
            early.child.stop()  # a no-op once the supervisor has run it (it reaps what it adopts or discards)


def serve_command(resolved: ResolvedSettings, target: LoadedTarget, early: EarlyChild | None = None) -> int:
    """Run until a signal (exit 0) or a supervision failure (its exit code)."""
    settings = resolved.settings
    # Imported here, not at the top: `fluxlit serve` imports this module before it starts Streamlit early, and
    # logging's ~25 ms (python -X importtime) would delay that start.
    from fluxlit.observability.logs import bind_process_fields, configure_logging, get_logger

    configure_logging(settings.log_level, settings.log_format)
    log = get_logger("fluxlit")
    settings = _with_concrete_port(settings, early.port if early is not None else None)
    configured = settings  # workers name themselves when no replica id was given
    if not settings.replica_id:
        settings = replace(settings, replica_id=f"{socket.gethostname()}-{os.getpid()}")
    # Pages and app.urls read these at request time, in this process and (through its env) in the child.
    os.environ["FLUXLIT_TRUST_PROXY"] = "1" if settings.trust_proxy else "0"
    os.environ["FLUXLIT_PUBLIC_BASE_URL"] = settings.public_base_url

    bind_process_fields(replica=settings.replica_id)
    plan = ServePlan(settings, target)
    log.info(
        "fluxlit.starting",
        target=settings.target,
        binds=list(plan.serve.binds),
        api_prefix=settings.api_mount_path,
        root_path=settings.root_path,
        streamlit=plan.child is not None,
        streamlit_prestarted=early is not None and plan.child is not None and plan.child.started(early.child),
        ws_ping_interval_s=settings.ws_ping_interval_s,
        ws_reassembly_budget_bytes=plan.reassembly_budget.limit,
    )
    from fluxlit_supervisor import run

    return int(
        run(
            plan.gateway,
            plan.serve,
            plan.child,
            plan.policy,
            plan.hub,
            plan.state_file,
            on_child_output=plan.on_child_output,
            before_stop=plan.before_stop,
            prestarted=early.child if early is not None else None,
            workers=worker_spec(configured, plan.state_file) if settings.workers > 1 else None,
        )
    )


# A worker's drain takes graceful_timeout plus the supervisor's own margins (cancel, wind-down).
_WORKER_STOP_SLACK_S = 5.0


def worker_spec(settings: Settings, state_file: Path) -> WorkerSpec:
    """The extra gateway processes of `--workers N` (module `fluxlit.runtime.gateway_worker`), on our state file."""
    from fluxlit_supervisor import WorkerSpec

    return WorkerSpec(
        argv=[sys.executable, "-m", "fluxlit.runtime.gateway_worker"],
        count=settings.workers - 1,
        env=handoff_environment(settings, state_file),
        stop_grace=settings.graceful_timeout_s + _WORKER_STOP_SLACK_S,
    )


def _with_concrete_port(settings: Settings, chosen: int | None = None) -> Settings:
    """Port 0 means "any": pick one now (or keep the one `chosen` earlier) so the child's API base can name it."""
    if settings.binds or settings.port != 0:
        return settings

    return replace(settings, port=chosen or _free_port(settings.host))


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def public_binds(settings: Settings) -> tuple[str, ...]:
    if settings.binds:
        return settings.binds
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return (f"{host}:{settings.port}",)


def internal_api_base(settings: Settings, loopback_port: int | None = None) -> str:
    """Where pages reach the API: a private plain-HTTP loopback port under TLS, else the first TCP bind."""
    if loopback_port is not None:
        return f"http://127.0.0.1:{loopback_port}{settings.root_path}{settings.api_mount_path}"
    for bind in public_binds(settings):
        if bind.startswith("unix:"):
            continue
        host, _, port = bind.rpartition(":")
        host = host.strip("[]")
        if host in ("0.0.0.0", "", "*"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if settings.certfile else "http"
        return f"{scheme}://{shown}:{port}{settings.root_path}{settings.api_mount_path}"
    raise ConfigError(
        "every bind is a unix socket, so Streamlit pages cannot reach the API: "
        "add a TCP bind such as --bind 127.0.0.1:8000"
    )


def child_environment(settings: Settings, loopback_port: int | None = None) -> dict[str, str]:
    spec = settings.target
    module_part, sep, attr = spec.rpartition(":")
    if sep and (module_part.endswith(".py") or "/" in module_part):
        spec = f"{Path(module_part).resolve()}:{attr}"  # the child runs from another script directory
    cwd = os.getcwd()
    pythonpath = os.pathsep.join(p for p in (cwd, os.environ.get("PYTHONPATH", "")) if p)
    return {
        "FLUXLIT_APP": spec,
        "FLUXLIT_API_PREFIX": settings.api_mount_path,
        "FLUXLIT_ROOT_PATH": settings.root_path,
        "FLUXLIT_INTERNAL_API_BASE": internal_api_base(settings, loopback_port),
        "FLUXLIT_TRUST_PROXY": "1" if settings.trust_proxy else "0",
        "FLUXLIT_PUBLIC_BASE_URL": settings.public_base_url,
        "PYTHONPATH": pythonpath,
        "PYTHONUNBUFFERED": "1",
    }


class ServePlan:
    """Everything one `fluxlit serve` run is made of, built before any process starts."""

    def __init__(
        self,
        settings: Settings,
        target: LoadedTarget,
        *,
        hub: StateHub | None = None,
        upstream: UpstreamStatusSource | None = None,
    ) -> None:
        """`upstream` replaces the hub as the source of Streamlit's status (a worker follows the state file)."""
        from fluxlit_proxy import ProxyConfig, ReverseProxy, Unavailable, Upstream
        from fluxlit_supervisor import (
            ChildSpec,
            MemoryBudget,
            RestartPolicy,
            ServeConfig,
            StateHub,
            WebSocketLimits,
            default_state_file_path,
        )

        from fluxlit.gateway.router import build_gateway
        from fluxlit.observability.logs import get_logger

        self.settings = settings
        self.hub = hub if hub is not None else StateHub()
        hub = self.hub
        child_log = get_logger("streamlit")

        def from_hub() -> UpstreamStatus:
            return upstream_status_from(hub.current, hub.stopping)

        status = upstream if upstream is not None else from_hub

        root = settings.root_path

        def resolve() -> Upstream | Unavailable:
            current = status()
            if current.ready and current.port is not None:
                return Upstream(host=current.host or "127.0.0.1", port=current.port, path_prefix=root)
            return Unavailable(
                reason=f"Streamlit is {current.state}",
                retry_after_seconds=current.retry_after_seconds,
                restarting=current.restarting,
            )

        has_ui = target.app is not None
        extra_args = target.app.streamlit_run_args if target.app else ()
        # One budget for every unfinished WebSocket message in this process: hypercorn's reassembly of what
        # browsers send and the proxy's of what Streamlit sends.
        self.reassembly_budget = MemoryBudget(reassembly_budget_bytes(settings))
        from fluxlit.observability.access import AccessObserver
        from fluxlit.observability.bridges import ChildStateMetrics, MetricsProxyHooks
        from fluxlit.observability.metrics import GatewayMetrics

        self.gateway_metrics = GatewayMetrics() if settings.metrics else None
        if self.gateway_metrics is not None:
            hub.subscribe(ChildStateMetrics(self.gateway_metrics))
        self.proxy = (
            ReverseProxy(
                resolve,
                ProxyConfig(
                    connect_timeout=settings.upstream_connect_timeout_s,
                    read_timeout=settings.upstream_read_timeout_s,
                    max_request_body_bytes=settings.max_proxy_request_body_bytes or None,
                    # Streamlit never sends more (it replaces a larger message by an error), so this cap only
                    # bounds a broken or hostile child.
                    ws_max_message_bytes=streamlit_max_message_bytes(extra_args),
                    pool_idle_timeout=settings.upstream_pool_idle_timeout_s,
                ),
                MetricsProxyHooks(self.gateway_metrics) if self.gateway_metrics is not None else None,
                reassembly_budget=self.reassembly_budget,
            )
            if has_ui
            else None
        )
        self.gateway = build_gateway(
            target.app if target.app is not None else target.api,
            settings,
            upstream_status=status if has_ui else _not_configured,
            proxy=self.proxy,
            internal={settings.metrics_path: self.gateway_metrics.endpoint()}
            if self.gateway_metrics is not None
            else None,
            observer=AccessObserver(
                self.gateway_metrics,
                generation=(lambda: hub.current.generation) if upstream is None else (lambda: status().generation),
            ),
        )
        # Under TLS, pages call the API over a private plain-HTTP loopback bind: no certificate to trust.
        loopback_port = _free_port() if settings.certfile and has_ui else None
        streamlit_argv(0, root_path=root, extra=extra_args)  # validate reserved flags before anything starts
        self.child = (
            ChildSpec(
                argv=lambda port: streamlit_argv(port, root_path=root, extra=extra_args),
                env=child_environment(settings, loopback_port),
                ready_path=f"{root}/_stcore/health",
                start_timeout=settings.child_start_timeout_s,
                name="streamlit",
            )
            if has_ui
            else None
        )
        self.policy = RestartPolicy(
            on_exit="exit" if settings.on_child_exit == "exit" else "restart",
            backoff_initial=settings.restart_backoff_initial_s,
            backoff_max=settings.restart_backoff_max_s,
            max_failures=settings.restart_max_failures,
            failure_window=settings.restart_failure_window_s,
        )
        # The metrics bind is plain HTTP, beside the public binds (and under TLS beside the loopback one).
        metrics_binds = [settings.metrics_bind] if settings.metrics_bind else []
        plain_extra = [f"127.0.0.1:{loopback_port}"] if loopback_port else []
        plain_extra += metrics_binds if settings.certfile else []
        self.serve = ServeConfig(
            binds=(*public_binds(settings), *([] if settings.certfile else metrics_binds)),
            certfile=settings.certfile,
            keyfile=settings.keyfile,
            graceful_timeout=settings.graceful_timeout_s,
            hypercorn_options={
                **hypercorn_options(settings),
                # hypercorn reassembles each browser message up to this, per connection; the budget bounds them all.
                "websocket_max_message_size": settings.max_ws_client_message_bytes,
                **({"insecure_bind": plain_extra} if plain_extra else {}),
            },
            websocket=WebSocketLimits(
                ping_interval=settings.ws_ping_interval_s or None,
                ping_timeout=settings.ws_ping_timeout_s,
                budget=self.reassembly_budget,
            ),
        )
        self.state_file = Path(settings.state_file) if settings.state_file else default_state_file_path()

        def on_child_output(stream: str, line: str, pid: int, generation: int) -> None:
            if line.strip():  # Streamlit pads its banner with blank lines
                child_log.info(line, stream=stream, pid=pid, generation=generation)

        self.on_child_output = on_child_output

    async def before_stop(self) -> None:
        self.gateway.begin_stopping()
        if self.proxy is not None:
            await self.proxy.close_websockets(1001, "server shutting down")


def _not_configured() -> UpstreamStatus:
    return UpstreamStatus("not_configured")


# Hypercorn settings the gateway relies on: its access log off (hypercorn's is not structured; we write ours in
# fluxlit.observability.access); header sizes: hypercorn_options.
# Not hypercorn's WebSocket pings: in hypercorn 0.18 its ping loop outlives a closed WebSocket by up to one
# interval, and every graceful stop after a browser session then waited the full --graceful-timeout (11.6 s
# instead of 0.5 s, measured). Browsers are pinged by the supervisor's watchdog instead (ServeConfig.websocket,
# --ws-ping-interval), which ends with its WebSocket.
HYPERCORN_OPTIONS: dict[str, Any] = {
    "accesslog": None,
    "websocket_ping_interval": None,
    # The idle timer is also hypercorn's only header deadline: uvicorn's 5 s cuts trickled headers early. (It used
    # to bound an fd leak too; fluxlit_supervisor.hypercorn_fixes now frees a client-closed connection at once.)
    "keep_alive_timeout": 5.0,
    # No `server: hypercorn-h11` on every response: it names our stack to scanners and costs ~10-17 us/request
    # (bench/api_profile.py); a proxied response keeps no upstream `server` either (fluxlit_proxy.headers).
    "include_server_header": False,
}


def hypercorn_options(settings: Settings) -> dict[str, Any]:
    """HYPERCORN_OPTIONS with the parsers' header limits set above the gateway's own ones, which decide.

    h11 bounds a request head only while it is incomplete after a read (h11 issue 182: one chunk passes, the
    same bytes trickled fail), so its limit is a memory backstop above request line + header block; h2's
    header list (RFC 7541 counts 32 bytes a field) likewise. The gateway's count answers 431 either way.
    """
    from fluxlit.gateway.router import MAX_HEADER_FIELDS

    head = settings.max_url_bytes + settings.max_header_bytes + _HEAD_SLACK_BYTES
    return {
        "h11_max_incomplete_size": head,
        "h2_max_header_list_size": head + 32 * MAX_HEADER_FIELDS,
        **HYPERCORN_OPTIONS,  # last, so a benchmark variant that updates HYPERCORN_OPTIONS wins
    }


# Method, version, CRLFs and HTTP/2's pseudo-header names around the request target and header block.
_HEAD_SLACK_BYTES = 4096


# The default reassembly budget: a quarter of the memory limit, shared among the gateway processes, and never so
# small that one ordinary Streamlit page (a few MB of messages) could not load.
_BUDGET_SHARE_OF_MEMORY = 4
_MIN_REASSEMBLY_BUDGET = 32 * 1024 * 1024


def reassembly_budget_bytes(settings: Settings) -> int:
    """FLUXLIT_WS_REASSEMBLY_BUDGET_BYTES, or (0) this process's share of a quarter of the memory limit."""
    if settings.ws_reassembly_budget_bytes:
        return settings.ws_reassembly_budget_bytes
    from fluxlit_supervisor import memory_limit_bytes

    share = memory_limit_bytes() // (_BUDGET_SHARE_OF_MEMORY * settings.workers)
    return max(share, _MIN_REASSEMBLY_BUDGET)
