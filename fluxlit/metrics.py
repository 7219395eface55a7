"""Prometheus metrics of one gateway process, in its own registry (never the global default one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from fluxlit.asgi import Receive, Scope, Send, send_bytes

HTTP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SESSION_BUCKETS = (1, 10, 60, 300, 900, 1800, 3600, 7200, 14400)


class GatewayMetrics:
    """Every series FluxLit exports; names and labels are part of the public contract (see docs)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "fluxlit_gateway_requests_total", "Requests by dispatch and method.", ["dispatch", "method_kind"], registry=r
        )
        self.duration = Histogram(
            "fluxlit_gateway_request_duration_seconds",
            "HTTP request duration (WebSocket sessions are in fluxlit_websocket_session_seconds).",
            ["dispatch"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.responses = Counter(
            "fluxlit_gateway_responses_total", "Responses by status class.", ["dispatch", "code_class"], registry=r
        )
        self.in_flight = Gauge(
            "fluxlit_gateway_in_flight_requests", "HTTP requests being served.", ["dispatch"], registry=r
        )
        self.upstream_errors = Counter(
            "fluxlit_proxy_upstream_errors_total", "Failures talking to Streamlit.", ["kind"], registry=r
        )
        self.pool = Gauge("fluxlit_proxy_pool_connections", "Upstream connections by state.", ["state"], registry=r)
        self.websockets = Gauge("fluxlit_websocket_connections", "Open proxied WebSocket sessions.", registry=r)
        self.ws_messages = Counter(
            "fluxlit_websocket_messages_total", "Proxied WebSocket messages.", ["direction"], registry=r
        )
        self.ws_sessions = Histogram(
            "fluxlit_websocket_session_seconds", "Proxied WebSocket session length.", buckets=SESSION_BUCKETS, registry=r
        )
        self.child_up = Gauge("fluxlit_supervisor_child_up", "1 while Streamlit is ready.", registry=r)
        self.child_restarts = Counter(
            "fluxlit_supervisor_child_restarts_total", "Streamlit restarts by reason.", ["reason"], registry=r
        )
        self.child_start = Histogram(
            "fluxlit_supervisor_child_start_seconds",
            "Seconds from spawning Streamlit to its first healthy answer.",
            buckets=(0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
            registry=r,
        )

    def observe_http(self, dispatch: str, method: str, status: int, duration_s: float) -> None:
        self.requests.labels(dispatch, method).inc()
        self.duration.labels(dispatch).observe(duration_s)
        self.responses.labels(dispatch, f"{status // 100}xx").inc()

    def count_websocket(self, dispatch: str) -> None:
        self.requests.labels(dispatch, "WEBSOCKET").inc()

    def endpoint(self) -> Callable[[Scope, Receive, Send], Any]:
        """The ASGI endpoint serving the exposition format."""
        registry = self.registry

        async def metrics_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return
            await send_bytes(send, 200, generate_latest(registry), CONTENT_TYPE_LATEST.encode())

        return metrics_endpoint
