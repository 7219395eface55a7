"""Counting, timing and logging each request once: the access log line and the request metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from fluxlit.asgi import Message, Scope, Send
from fluxlit.metrics import GatewayMetrics
from fluxlit.redaction import redact_query

Dispatch = Callable[[Send], Awaitable[None]]


class AccessObserver:
    """Wraps one request: in-flight gauge, duration histogram, status classes, and one access log line."""

    def __init__(
        self,
        metrics: GatewayMetrics | None,
        *,
        access_log: bool = True,
        generation: Callable[[], int] = lambda: 0,
        logger: Any = None,
    ) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.generation = generation
        self.log = logger or structlog.get_logger("fluxlit.access")

    async def observe(self, dispatch: str, scope: Scope, request_id: str, call: Dispatch, send: Send) -> None:
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            if scope["type"] == "http":
                await self._http(dispatch, scope, request_id, call, send)
            else:
                await self._websocket(dispatch, scope, request_id, call, send)

    async def _http(self, dispatch: str, scope: Scope, request_id: str, call: Dispatch, send: Send) -> None:
        status = 0
        bytes_out = 0

        async def observed(message: Message) -> None:
            nonlocal status, bytes_out
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "http.response.body":
                bytes_out += len(message.get("body", b""))
            await send(message)

        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight.labels(dispatch).inc()
        started = time.perf_counter()
        try:
            await call(observed)
        finally:
            duration = time.perf_counter() - started
            # A request that died before answering is logged as the 500 the server turns it into.
            final = status or 500
            if metrics is not None:
                metrics.in_flight.labels(dispatch).dec()
                metrics.observe_http(dispatch, scope["method"], final, duration)
            if self.access_log:
                self._line(
                    "request",
                    logging.INFO,
                    scope,
                    request_id,
                    dispatch,
                    method=scope["method"],
                    status=final,
                    duration_ms=round(duration * 1000, 3),
                    bytes_out=bytes_out,
                )

    async def _websocket(self, dispatch: str, scope: Scope, request_id: str, call: Dispatch, send: Send) -> None:
        close_code: int | None = None
        accepted = False

        async def observed(message: Message) -> None:
            nonlocal close_code, accepted
            kind = message["type"]
            if kind == "websocket.accept":
                accepted = True
            elif kind == "websocket.close":
                close_code = message.get("code", 1000)
            elif kind == "websocket.http.response.start":
                close_code = message["status"]
            await send(message)

        if self.metrics is not None:
            self.metrics.count_websocket(dispatch)
        started = time.perf_counter()
        try:
            await call(observed)
        finally:
            if self.access_log:
                self._line(
                    "websocket",
                    logging.INFO,
                    scope,
                    request_id,
                    dispatch,
                    method="WEBSOCKET",
                    accepted=accepted,
                    close_code=close_code,
                    duration_ms=round((time.perf_counter() - started) * 1000, 3),
                )

    def _line(self, event: str, level: int, scope: Scope, request_id: str, dispatch: str, **fields: Any) -> None:
        client = scope.get("client")
        self.log.log(
            level,
            event,
            request_id=request_id,
            path=scope["path"],
            query=redact_query(scope.get("query_string", b"").decode("latin-1")),
            dispatch=dispatch,
            client=f"{client[0]}:{client[1]}" if client else None,
            upstream_generation=self.generation() if dispatch == "proxy" else None,
            **fields,
        )
