"""Bridges from the generic layers' callbacks (proxy hooks, supervisor state) to FluxLit's metrics."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fluxlit_proxy import ProxyHooks

from fluxlit.observability.access import current_websocket_tally

if TYPE_CHECKING:
    from fluxlit.observability.metrics import GatewayMetrics


class MetricsProxyHooks(ProxyHooks):
    """Counts what the proxy reports: upstream failures, pool size, WebSocket sessions and messages."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics

    def upstream_error(self, kind: str) -> None:
        self.metrics.upstream_errors.labels(kind).inc()

    def pool_changed(self, idle: int, in_use: int) -> None:
        self.metrics.pool.labels("idle").set(idle)
        self.metrics.pool.labels("in_use").set(in_use)

    def websocket_opened(self) -> None:
        self.metrics.websockets.inc()

    def websocket_message(self, direction: str, size: int) -> None:
        self.metrics.ws_messages.labels(direction).inc()
        tally = current_websocket_tally()
        if tally is not None:
            if direction == "upstream":
                tally.messages_in += 1
            else:
                tally.messages_out += 1

    def websocket_closed(self, code: int, duration_s: float) -> None:
        self.metrics.websockets.dec()
        self.metrics.ws_sessions.observe(duration_s)
        tally = current_websocket_tally()
        if tally is not None:
            # The client leg's code, also when the client closed first and the app never sent a close.
            tally.close_code = code


class ChildStateMetrics:
    """Subscribed to the supervisor's state hub: child up/down and pid, restarts by reason, time to healthy."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics
        self._spawned_at: float | None = None
        self._last = ""

    def __call__(self, state: Any) -> None:
        name = state.state
        metrics = self.metrics
        metrics.set_child_pid(state.pid)
        metrics.child_up.set(1 if name == "ready" else 0)
        if name == "starting":
            self._spawned_at = time.monotonic()
        elif name == "ready" and self._last == "starting" and self._spawned_at is not None:
            metrics.child_start.observe(time.monotonic() - self._spawned_at)
        elif name == "restarting" and self._last != "restarting":
            metrics.child_restarts.labels(restart_reason(state.detail)).inc()
        self._last = name


def restart_reason(detail: str) -> str:
    """A small, bounded label set from the supervisor's free-text detail."""
    text = detail.lower()
    if "sighup" in text or "requested" in text:
        return "requested"
    if "signal" in text or "killed" in text:
        return "signal"
    if "health" in text:
        return "unhealthy"
    return "exit"
