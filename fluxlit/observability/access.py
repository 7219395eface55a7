"""Counting, timing and logging each request once: the access log line and the request metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from fluxlit.asgi_types import Message, Scope, Send
from fluxlit.observability.logs import REQUEST_ID, fast_info_line, get_logger
from fluxlit.observability.metrics import GatewayMetrics
from fluxlit.observability.redaction import redact_query

Dispatch = Callable[[Send], Awaitable[None]]


@dataclass
class WebSocketTally:
    """What the proxy reports about the session being observed (see MetricsProxyHooks), for its close line."""

    messages_in: int = 0
    messages_out: int = 0
    close_code: int | None = None


# The proxy's hooks run in the request's task (or tasks it started), so they find the session's tally here.
_current_tally: ContextVar[WebSocketTally | None] = ContextVar("fluxlit_websocket_tally", default=None)


def current_websocket_tally() -> WebSocketTally | None:
    """The tally of the WebSocket session being served in this context, if any."""
    return _current_tally.get()


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
        self.log = logger or get_logger("fluxlit.access")
        self._default_logger = logger is None

    async def observe(self, dispatch: str, scope: Scope, request_id: str, call: Dispatch, send: Send) -> None:
        token = REQUEST_ID.set(request_id)
        try:
            if scope["type"] == "http":
                await self._http(dispatch, scope, request_id, call, send)
            else:
                await self._websocket(dispatch, scope, request_id, call, send)
        finally:
            REQUEST_ID.reset(token)

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
        in_flight: Any = None  # the gauge child, looked up once
        if metrics is not None:
            in_flight = metrics.in_flight_for(dispatch)
            in_flight.inc()
        started = time.perf_counter()
        try:
            await call(observed)
        finally:
            duration = time.perf_counter() - started
            # A request that died before answering is logged as the 500 the server turns it into.
            final = status or 500
            if metrics is not None:
                in_flight.dec()
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
        tally = WebSocketTally()
        status = 0
        sent_close: int | None = None

        async def observed(message: Message) -> None:
            nonlocal status, sent_close
            kind = message["type"]
            if kind == "websocket.accept":
                status = 101
                if self.access_log:
                    self._line("websocket.open", logging.INFO, scope, request_id, dispatch, method="WEBSOCKET")
            elif kind == "websocket.close":
                sent_close = message.get("code", 1000)
            elif kind == "websocket.http.response.start":
                status = message["status"]
            await send(message)

        if self.metrics is not None:
            self.metrics.count_websocket(dispatch)
        started = time.perf_counter()
        token = _current_tally.set(tally)
        try:
            await call(observed)
        finally:
            _current_tally.reset(token)
            if self.access_log:
                self._line(
                    "websocket.close",
                    logging.INFO,
                    scope,
                    request_id,
                    dispatch,
                    method="WEBSOCKET",
                    # A close before accepting is answered 403 by the server (ASGI's rule for websocket.close).
                    status=status or 403,
                    close_code=tally.close_code if tally.close_code is not None else sent_close,
                    # Who ended the session: we did if the app sent a close, else the client (or its network).
                    closed_by="server" if sent_close is not None else "client",
                    duration_ms=round((time.perf_counter() - started) * 1000, 3),
                    messages_in=tally.messages_in,
                    messages_out=tally.messages_out,
                )

    def _line(self, event: str, level: int, scope: Scope, request_id: str, dispatch: str, **fields: Any) -> None:
        client = scope.get("client")
        forwarded = scope.get("state", {}).get("forwarded_client")
        query = scope.get("query_string")
        line = {
            "request_id": request_id,
            "path": scope["path"],
            "query": redact_query(query.decode("latin-1")) if query else "",
            "dispatch": dispatch,
            "client": forwarded if forwarded is not None else (f"{client[0]}:{client[1]}" if client else None),
            "upstream_generation": self.generation() if dispatch == "proxy" else None,
            **fields,
        }
        if level == logging.INFO and self._default_logger and fast_info_line(event, "fluxlit.access", line):
            return
        self.log.log(level, event, **line)
