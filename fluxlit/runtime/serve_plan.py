"""The composition root of a run: settings and a loaded target in, the frozen parts the supervisor runs out.

Imported only once `fluxlit serve` has started Streamlit early (`runtime.serve_command`), so the heavy imports
here (python -X importtime: the gateway with FastAPI ~0.7 s, fluxlit_proxy ~0.2 s) overlap Streamlit's boot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fluxlit_proxy import ProxyConfig, ProxyHooks, ReverseProxy
from fluxlit_supervisor import (
    MemoryBudget,
    RestartPolicy,
    ServeConfig,
    StateHub,
    WebSocketLimits,
    default_state_file_path,
    memory_limit_bytes,
    pick_free_port,
)

from fluxlit.config.settings import Settings
from fluxlit.gateway.external_upstream import ExternalUpstream, external_upstream
from fluxlit.gateway.router import Gateway, build_gateway
from fluxlit.gateway.upstream_route import StreamlitRoute
from fluxlit.gateway.upstream_view import HubStatus, UpstreamView, UpstreamViewSource
from fluxlit.observability.access import AccessObserver
from fluxlit.observability.bridges import ChildStateMetrics, MetricsProxyHooks
from fluxlit.observability.logs import get_logger
from fluxlit.observability.metrics import GatewayMetrics
from fluxlit.runtime.addresses import public_binds
from fluxlit.runtime.hypercorn_options import hypercorn_options
from fluxlit.runtime.streamlit_child import streamlit_child_spec
from fluxlit.streamlit.command import streamlit_max_message_bytes

if TYPE_CHECKING:
    from fluxlit_supervisor import ChildSpec

    from fluxlit.targets import LoadedTarget

ChildOutput = Callable[[str, str, int, int], None]


@dataclass(frozen=True)
class ServePlan:
    """Everything one `fluxlit serve` run (or one worker of it) is made of, built before any process starts."""

    settings: Settings
    hub: StateHub
    gateway: Gateway
    proxy: ReverseProxy | None  # None when there is no Streamlit to front (a bare FastAPI app, no external one)
    child: ChildSpec | None  # None as well when fronting an external Streamlit (--streamlit-upstream)
    policy: RestartPolicy
    serve: ServeConfig
    state_file: Path | None  # where the child's state is published; None with an external Streamlit (not ours)
    gateway_metrics: GatewayMetrics | None
    # One budget for every unfinished WebSocket message in this process: hypercorn's reassembly of what browsers
    # send and the proxy's of what Streamlit sends.
    reassembly_budget: MemoryBudget
    on_child_output: ChildOutput

    async def before_stop(self) -> None:
        self.gateway.begin_stopping()
        if self.proxy is not None:
            await self.proxy.close_websockets(1001, "server shutting down")


def build_serve_plan(
    settings: Settings,
    target: LoadedTarget,
    *,
    hub: StateHub | None = None,
    upstream: UpstreamViewSource | None = None,
) -> ServePlan:
    """Compose a run top-down; `upstream` replaces the hub as Streamlit's status (a worker follows the state file).

    With `settings.streamlit_upstream`, the run fronts that Streamlit (or the one its state file names) and starts
    none: every process of the run, workers too, probes it itself."""
    hub = hub if hub is not None else StateHub()
    from_hub = HubStatus(hub)
    external = external_upstream(settings) if settings.streamlit_upstream else None
    status: UpstreamViewSource = external or (upstream if upstream is not None else from_hub)
    has_ui = target.app is not None
    starts_child = has_ui and external is None
    fronts = has_ui or external is not None
    extra_args = target.app.streamlit_run_args if target.app is not None else ()
    budget = MemoryBudget(reassembly_budget_bytes(settings))
    metrics = _gateway_metrics(settings, hub)
    proxy = (
        _proxy(settings, StreamlitRoute(status, settings.root_path), metrics, budget, extra_args, external)
        if fronts
        else None
    )
    gateway = _gateway(
        settings,
        target,
        proxy,
        metrics,
        status=status if fronts else _not_configured,
        external=external,
        generation=from_hub.generation if upstream is None else (lambda: status().generation),
    )
    # Under TLS, pages call the API over a private plain-HTTP loopback bind: no certificate to trust.
    loopback_port = pick_free_port("127.0.0.1") if settings.certfile and starts_child else None
    own_state_file = Path(settings.state_file) if settings.state_file else default_state_file_path()
    return ServePlan(
        settings=settings,
        hub=hub,
        gateway=gateway,
        proxy=proxy,
        child=streamlit_child_spec(settings, extra_args, loopback_port) if starts_child else None,
        policy=restart_policy(settings),
        serve=serve_config(settings, budget, loopback_port),
        # An external run's state file is someone else's to write (and to remove): it is only read.
        state_file=None if external is not None else own_state_file,
        gateway_metrics=metrics,
        reassembly_budget=budget,
        on_child_output=_child_output_logger(),
    )


def _gateway_metrics(settings: Settings, hub: StateHub) -> GatewayMetrics | None:
    if not settings.metrics:
        return None
    metrics = GatewayMetrics()
    hub.subscribe(ChildStateMetrics(metrics))
    return metrics


def _proxy(
    settings: Settings,
    route: StreamlitRoute,
    metrics: GatewayMetrics | None,
    budget: MemoryBudget,
    extra_args: Sequence[str],
    external: ExternalUpstream | None,
) -> ReverseProxy:
    config = ProxyConfig(
        connect_timeout=settings.upstream_connect_timeout_s,
        read_timeout=settings.upstream_read_timeout_s,
        max_request_body_bytes=settings.max_proxy_request_body_bytes or None,
        # Streamlit never sends more (it replaces a larger message by an error), so this cap only bounds a broken
        # or hostile child.
        ws_max_message_bytes=streamlit_max_message_bytes(extra_args),
        pool_idle_timeout=settings.upstream_pool_idle_timeout_s,
    )
    hooks: ProxyHooks | None = MetricsProxyHooks(metrics) if metrics is not None else None
    if external is not None:
        hooks = ProbeAfterConnectFailure(external, hooks or ProxyHooks())
    return ReverseProxy(route, config, hooks, reassembly_budget=budget)


class ProbeAfterConnectFailure(ProxyHooks):
    """The proxy's hooks in front of an external Streamlit: a failed connect makes the next request probe it again
    (ExternalUpstream.connect_failed); every event still reaches `inner` (the metrics, when on)."""

    def __init__(self, external: ExternalUpstream, inner: ProxyHooks) -> None:
        self.external = external
        self.inner = inner

    def upstream_error(self, kind: str) -> None:
        if kind == "connect":
            self.external.connect_failed()
        self.inner.upstream_error(kind)

    def pool_changed(self, idle: int, in_use: int) -> None:
        self.inner.pool_changed(idle, in_use)

    def websocket_opened(self) -> None:
        self.inner.websocket_opened()

    def websocket_message(self, direction: str, size: int) -> None:
        self.inner.websocket_message(direction, size)

    def websocket_closed(self, code: int, duration_s: float) -> None:
        self.inner.websocket_closed(code, duration_s)


def _gateway(
    settings: Settings,
    target: LoadedTarget,
    proxy: ReverseProxy | None,
    metrics: GatewayMetrics | None,
    *,
    status: UpstreamViewSource,
    external: ExternalUpstream | None,
    generation: Callable[[], int],
) -> Gateway:
    return build_gateway(
        target.app if target.app is not None else target.api,
        settings,
        upstream_status=status,
        upstream_refresh=external.refresh if external is not None else None,
        proxy=proxy,
        internal={settings.metrics_path: metrics.endpoint()} if metrics is not None else None,
        observer=AccessObserver(metrics, generation=generation),
    )


def restart_policy(settings: Settings) -> RestartPolicy:
    return RestartPolicy(
        on_exit="exit" if settings.on_child_exit == "exit" else "restart",
        backoff_initial=settings.restart_backoff_initial_s,
        backoff_max=settings.restart_backoff_max_s,
        max_failures=settings.restart_max_failures,
        failure_window=settings.restart_failure_window_s,
    )


def serve_config(settings: Settings, budget: MemoryBudget, loopback_port: int | None) -> ServeConfig:
    """The public binds (plus, plain HTTP, the TLS loopback and the metrics bind) and how hypercorn serves them."""
    metrics_binds = [settings.metrics_bind] if settings.metrics_bind else []
    plain_extra = [f"127.0.0.1:{loopback_port}"] if loopback_port else []
    plain_extra += metrics_binds if settings.certfile else []
    return ServeConfig(
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
            budget=budget,
        ),
    )


def _child_output_logger() -> ChildOutput:
    child_log: Any = get_logger("streamlit")

    def on_child_output(stream: str, line: str, pid: int, generation: int) -> None:
        if line.strip():  # Streamlit pads its banner with blank lines
            child_log.info(line, stream=stream, pid=pid, generation=generation)

    return on_child_output


def _not_configured() -> UpstreamView:
    return UpstreamView("not_configured")


# The default reassembly budget: a quarter of the memory limit, shared among the gateway processes, and never so
# small that one ordinary Streamlit page (a few MB of messages) could not load.
_BUDGET_SHARE_OF_MEMORY = 4
_MIN_REASSEMBLY_BUDGET = 32 * 1024 * 1024


def reassembly_budget_bytes(settings: Settings) -> int:
    """FLUXLIT_WS_REASSEMBLY_BUDGET_BYTES, or (0) this process's share of a quarter of the memory limit."""
    if settings.ws_reassembly_budget_bytes:
        return settings.ws_reassembly_budget_bytes
    share = memory_limit_bytes() // (_BUDGET_SHARE_OF_MEMORY * settings.workers)
    return max(share, _MIN_REASSEMBLY_BUDGET)
