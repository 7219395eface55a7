"""The ReverseProxy ASGI app: resolve the upstream per request and hand the scope to HTTP or WebSocket."""

from __future__ import annotations

import logging

import anyio

from .asgi import Receive, Scope, Send, request_id_of, scope_headers
from .config import ProxyConfig, Unavailable, UpstreamResolver
from .failures import unavailable_refusal
from .hooks import ProxyHooks
from .http import forward_http
from .pool import ConnectionPool
from .replies import send_plain_response
from .spare import SpareConnection
from .websocket import CLOSE_GRACE, WebSocketSession, bridge_websocket
from .ws_limits import ReassemblyBudget

log = logging.getLogger("proxy")


class ReverseProxy:
    """An ASGI app forwarding every HTTP request and WebSocket to the one upstream `resolve()` names.

    `reassembly_budget` bounds the bytes of upstream messages held until whole, across every session.
    """

    def __init__(
        self,
        resolve: UpstreamResolver,
        config: ProxyConfig | None = None,
        hooks: ProxyHooks | None = None,
        reassembly_budget: ReassemblyBudget | None = None,
    ) -> None:
        self._resolve = resolve
        self._budget = reassembly_budget
        self._config = config or ProxyConfig()
        self._hooks = hooks or ProxyHooks()
        self._pool = ConnectionPool(self._config, self._hooks)
        self._spare = SpareConnection(self._config) if self._config.ws_spare_connection else None
        self._sessions: set[WebSocketSession] = set()

    @property
    def config(self) -> ProxyConfig:
        return self._config

    @property
    def reassembly_budget(self) -> ReassemblyBudget | None:
        return self._budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await bridge_websocket(
                scope,
                receive,
                send,
                resolved=self._resolve(),
                restarting=self._restarting,
                config=self._config,
                hooks=self._hooks,
                sessions=self._sessions,
                spare=self._spare,
                budget=self._budget,
            )
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise ValueError(f"ReverseProxy cannot serve ASGI scope type {kind!r}: only http and websocket")

    async def close_websockets(self, code: int, reason: str = "") -> None:
        """Close every open WebSocket, both legs, with `code`; returns when they are closed (bounded)."""
        sessions = list(self._sessions)
        for session in sessions:
            session.close(code, reason)
        with anyio.move_on_after(CLOSE_GRACE + 1.0):
            for session in sessions:
                await session.done.wait()

    async def aclose(self) -> None:
        """Close the idle pooled connections and the spare; connections in use close when their exchange ends."""
        await self._pool.aclose()
        if self._spare is not None:
            await self._spare.aclose()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        resolved = self._resolve()
        if isinstance(resolved, Unavailable):
            refusal = unavailable_refusal(resolved.reason, resolved.retry_after_seconds, resolved.restarting)
            log.warning(
                "%s %s: %d, %s",
                scope.get("method", "-"),
                scope.get("path", ""),
                refusal.status,
                resolved.reason,
                extra={"request_id": request_id_of(scope_headers(scope))},
            )
            await send_plain_response(
                send, refusal.status, refusal.text, retry_after_seconds=refusal.retry_after_seconds
            )
            return
        await forward_http(
            scope, receive, send, upstream=resolved, pool=self._pool, config=self._config, hooks=self._hooks
        )

    def _restarting(self) -> bool:
        resolved = self._resolve()
        return isinstance(resolved, Unavailable) and resolved.restarting

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        # Only met when the proxy is served directly (tests, benchmarks); the gateway owns lifespan.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
