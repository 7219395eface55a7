"""Forwarding one HTTP exchange: request body up, response down, streamed both ways with backpressure."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import anyio
import h11

from .asgi import Message, Receive, Scope, Send, request_id_of, scope_headers
from .config import ProxyConfig, Upstream
from .connection import STREAM_GONE, UpstreamConnection
from .failures import BodyTooLarge, Failure, ResponseAborted, UpstreamError, body_too_large_refusal
from .headers import (
    BodyFraming,
    ClientHop,
    ensure_host,
    first_header,
    forward_request_headers,
    framing_headers,
    host_fallback,
    request_body_framing,
    request_target,
    response_headers_for_client,
)
from .hooks import ProxyHooks
from .pool import ConnectionPool
from .replies import send_plain_response
from .reuse import may_retry
from .transport import describe

log = logging.getLogger("proxy")

# Like curl: when the upstream says nothing about "Expect: 100-continue" within a second, send the
# body anyway. (The ASGI server has usually told the client "100 Continue" already; this wait only
# spares the upstream a body it may refuse.)
CONTINUE_WAIT = 1.0


class _ClientGone(Exception):
    pass


class _ClientStalled(Exception):
    pass


@dataclass
class _Client:
    """The client side of one request, and what has happened on it so far."""

    receive: Receive
    send: Send
    pending: list[Message] = field(default_factory=list)
    body_consumed: bool = False
    response_started: bool = False
    gone: bool = False

    async def next_message(self) -> Message:
        if self.pending:
            return self.pending.pop(0)
        return await self.receive()


class _Watchdog:
    """One cancel scope for a whole response body, its deadline re-armed before every wait.

    Far cheaper than a scope per chunk; `waiting_on` tells which side stalled when it fires.
    """

    def __init__(self, config: ProxyConfig) -> None:
        self.scope = anyio.CancelScope()
        self.waiting_on = "client"
        self._timeouts = {"client": config.write_timeout, "upstream": config.read_timeout}

    def arm(self, side: str) -> None:
        self.waiting_on = side
        self.scope.deadline = anyio.current_time() + self._timeouts[side]


@dataclass(frozen=True)
class _Request:
    """What goes upstream; fixed across the one retry."""

    method: str
    head: h11.Request
    framing: BodyFraming
    expects_continue: bool
    request_id: str


class _Exchange:
    """One request/response cycle on one upstream connection.

    Two tasks: the request side streams the client body up and then watches for the client going
    away; the response side streams the upstream response down. Either ends the other by cancelling.
    """

    def __init__(self, conn: UpstreamConnection, request: _Request, client: _Client, config: ProxyConfig):
        self._conn = conn
        self._request = request
        self._client = client
        self._config = config
        self.failure: UpstreamError | BodyTooLarge | _ClientStalled | None = None
        self.complete = False
        # The response-head deadline starts only once the request is sent: uploads may take long.
        self._head_wait = anyio.CancelScope()
        self._answered = anyio.Event()
        self._final_head_seen = False
        self._cancel = anyio.CancelScope()

    async def run(self) -> None:
        try:
            await self._conn.send(self._request.head, self._config.write_timeout)
        except UpstreamError as exc:
            self.failure = exc
            return
        async with anyio.create_task_group() as tg:
            self._cancel = tg.cancel_scope
            tg.start_soon(self._request_side)
            try:
                await self._response_side()
            except (UpstreamError, _ClientStalled) as exc:
                self._fail(exc)
            except _ClientGone:
                self._client_gone()
            tg.cancel_scope.cancel()

    def _fail(self, exc: UpstreamError | BodyTooLarge | _ClientStalled) -> None:
        if self.failure is None:
            self.failure = exc
        self._cancel.cancel()

    def _client_gone(self) -> None:
        self._client.gone = True
        self._cancel.cancel()

    async def _request_side(self) -> None:
        try:
            sent = await self._send_body()
        except (UpstreamError, BodyTooLarge) as exc:
            self._fail(exc)
            return
        except h11.LocalProtocolError:
            # The body did not match the client's own Content-Length: the client broke off.
            self._client_gone()
            return
        if sent:
            self._head_wait.deadline = anyio.current_time() + self._config.read_timeout
        while not self._client.gone:
            message = await self._client.next_message()
            if message["type"] == "http.disconnect":
                self._client_gone()

    async def _send_body(self) -> bool:
        """Stream the client body up; False when it will not be sent in full."""
        conn, client, timeout = self._conn, self._client, self._config.write_timeout
        if self._request.expects_continue:
            with anyio.move_on_after(CONTINUE_WAIT):
                await self._answered.wait()
            if self._final_head_seen:
                return False
        if self._request.framing.kind == "none":
            await conn.send(h11.EndOfMessage(), timeout)
            return True
        limit = self._config.max_request_body_bytes
        total = 0
        while True:
            message = await client.next_message()
            if message["type"] == "http.disconnect":
                self._client_gone()
                return False
            if message["type"] != "http.request":
                continue
            body = message.get("body", b"")
            if body:
                client.body_consumed = True
                total += len(body)
                if limit is not None and total > limit:
                    raise BodyTooLarge(limit)
                await conn.send(h11.Data(data=body), timeout)
            if not message.get("more_body", False):
                await conn.send(h11.EndOfMessage(), timeout)
                return True

    async def _response_side(self) -> None:
        response = None
        with self._head_wait:
            response = await self._read_final_head()
        if response is None:
            raise UpstreamError(Failure.READ_TIMEOUT, f"no response head within {self._config.read_timeout:g}s")
        self._client.response_started = True
        start = {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response_headers_for_client(list(response.headers)),
        }
        watchdog = _Watchdog(self._config)
        with watchdog.scope:
            watchdog.arm("client")
            await self._to_client(start)
            event: h11.Event | None = None
            while True:
                if event is None:
                    watchdog.arm("upstream")
                    event = await self._conn.next_event()
                watchdog.arm("client")
                if isinstance(event, h11.Data):
                    # When the end is already here, say so with the last chunk: one send fewer.
                    following = self._conn.buffered_event()
                    last = isinstance(following, h11.EndOfMessage)
                    await self._to_client({"type": "http.response.body", "body": event.data, "more_body": not last})
                    if last:
                        self.complete = True
                        return
                    event = following
                elif isinstance(event, h11.EndOfMessage):
                    await self._to_client({"type": "http.response.body", "body": b"", "more_body": False})
                    self.complete = True
                    return
                else:
                    raise UpstreamError(Failure.PROTOCOL, f"unexpected {type(event).__name__} in the body")
        if watchdog.waiting_on == "client":
            raise _ClientStalled(f"client read nothing for {self._config.write_timeout:g}s")
        raise UpstreamError(Failure.READ_TIMEOUT, f"body stalled for {self._config.read_timeout:g}s")

    async def _read_final_head(self) -> h11.Response:
        while True:
            event = await self._conn.next_event()
            if isinstance(event, h11.Response):
                self._final_head_seen = True
                self._answered.set()
                return event
            if isinstance(event, h11.InformationalResponse):
                # 1xx are for this hop only; ASGI has no way to pass them on anyway.
                if event.status_code == 101:
                    raise UpstreamError(Failure.PROTOCOL, "101 Switching Protocols to a plain request")
                if event.status_code == 100:
                    self._answered.set()
                continue
            if isinstance(event, h11.ConnectionClosed):
                raise UpstreamError(Failure.RESET, "closed before responding")
            raise UpstreamError(Failure.PROTOCOL, f"unexpected {type(event).__name__} before the response")

    async def _to_client(self, message: Message) -> None:
        try:
            await self._client.send(message)
        except STREAM_GONE:
            raise _ClientGone from None


def _build_request(scope: Scope, upstream: Upstream, framing: BodyFraming) -> _Request:
    headers = scope_headers(scope)
    client = scope.get("client")
    server = scope.get("server")
    hop = ClientHop(
        client_host=client[0] if client else None,
        scheme=scope.get("scheme", "http"),
        server_port=server[1] if server else None,
        root_path=scope.get("root_path", ""),
    )
    outgoing = ensure_host(forward_request_headers(headers, hop), host_fallback(server, upstream.host))
    target = request_target(upstream.path_prefix, scope.get("raw_path"), scope["path"], scope.get("query_string", b""))
    method = scope["method"]
    expect = first_header(headers, b"expect")
    return _Request(
        method=method,
        head=h11.Request(method=method.encode("ascii"), target=target, headers=outgoing + framing_headers(framing)),
        framing=framing,
        expects_continue=framing.kind != "none" and expect is not None and expect.lower() == b"100-continue",
        request_id=request_id_of(headers),
    )


async def _settle_framing(client: _Client) -> BodyFraming:
    """HTTP/2+ without Content-Length: look at the first body message to choose the framing."""
    message = await client.receive()
    if message["type"] == "http.disconnect":
        client.gone = True
        return BodyFraming("none")
    client.pending.append(message)
    if message.get("more_body", False):
        return BodyFraming("chunked")
    body = message.get("body", b"")
    return BodyFraming("length", len(body)) if body else BodyFraming("none")


async def forward_http(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    upstream: Upstream,
    pool: ConnectionPool,
    config: ProxyConfig,
    hooks: ProxyHooks,
) -> None:
    client = _Client(receive, send)
    headers = scope_headers(scope)
    method = scope["method"]
    context = f"{method} {scope.get('path', '')} -> {describe(upstream)}"
    extra = {"request_id": request_id_of(headers)}
    framing = request_body_framing(scope.get("http_version", "1.1"), headers)
    if framing.kind == "unknown":
        framing = await _settle_framing(client)
        if client.gone:
            return
    limit = config.max_request_body_bytes
    if limit is not None and framing.length is not None and framing.length > limit:
        log.warning("%s: 413, Content-Length %d over %d", context, framing.length, limit, extra=extra)
        await send_plain_response(send, 413, body_too_large_refusal(limit).text)
        return
    try:
        request = _build_request(scope, upstream, framing)
    except h11.LocalProtocolError as exc:
        log.warning("%s: 400, request not forwardable: %s", context, exc, extra=extra)
        await send_plain_response(send, 400, "request cannot be forwarded")
        return

    for attempt in range(2):
        try:
            conn = await pool.acquire(upstream, fresh=attempt > 0)
        except UpstreamError as exc:
            await _report(exc, client, hooks, context, extra)
            return
        exchange = _Exchange(conn, request, client, config)
        try:
            await exchange.run()
        finally:
            if exchange.complete:
                await pool.release(conn)
            else:
                await pool.discard(conn)
        if exchange.complete or client.gone:
            return
        failure = exchange.failure
        if isinstance(failure, UpstreamError) and may_retry(
            method=method,
            connection_reused=conn.reused,
            body_consumed=client.body_consumed,
            response_bytes_seen=conn.bytes_received,
            failure=failure.failure,
            attempt=attempt,
        ):
            log.debug("%s: kept-alive connection was stale (%s); retrying", context, failure, extra=extra)
            continue
        assert failure is not None
        await _report(failure, client, hooks, context, extra)
        return


async def _report(
    failure: UpstreamError | BodyTooLarge | _ClientStalled,
    client: _Client,
    hooks: ProxyHooks,
    context: str,
    extra: dict[str, str],
) -> None:
    """One WARNING line, the hook, and the client told: a status if possible, else an aborted response."""
    if isinstance(failure, UpstreamError):
        hooks.upstream_error(failure.failure.hook_kind)
    if client.response_started or isinstance(failure, _ClientStalled):
        log.warning("%s: response aborted: %s", context, failure, extra=extra)
        raise ResponseAborted(f"{context}: {failure}")
    if isinstance(failure, UpstreamError):
        status, text = failure.failure.status, failure.failure.text
    else:
        refusal = body_too_large_refusal(failure.limit)
        status, text = refusal.status, refusal.text
    log.warning("%s: %d, %s", context, status, failure, extra=extra)
    await send_plain_response(client.send, status, text)
