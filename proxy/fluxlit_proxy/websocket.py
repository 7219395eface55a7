"""Bridging one ASGI WebSocket to the upstream over wsproto: handshake first, then frames and closes relayed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import anyio.abc
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Request, TextMessage

from .asgi import Message as AsgiMessage
from .asgi import Receive, Scope, Send, request_id_of, scope_headers
from .close_codes import (
    GOING_AWAY,
    INTERNAL_ERROR,
    MESSAGE_TOO_BIG,
    POLICY_VIOLATION,
    code_after_upstream_loss,
    sendable_close_code,
    sendable_close_reason,
)
from .config import ProxyConfig, Unavailable, Upstream
from .connection import RECEIVE_SIZE, STREAM_GONE
from .failures import UpstreamError, unavailable_refusal, websocket_refusal_for_failure
from .headers import (
    ClientHop,
    first_header,
    request_target,
    websocket_request_headers,
    websocket_response_headers,
)
from .hooks import ProxyHooks
from .replies import deny_websocket, deny_websocket_plain
from .spare import SpareConnection
from .transport import describe
from .ws_handshake import Accepted, Rejected, open_websocket, upstream_host_value
from .ws_limits import OVER_BUDGET, TOO_BIG, Reassembly, ReassemblyBudget

log = logging.getLogger("proxy")

# How long a closing handshake may take on the upstream leg before the socket is simply closed.
CLOSE_GRACE = 1.0


@dataclass(frozen=True)
class _Ending:
    """How each leg is to be closed; None means that leg is already closed and gets nothing more."""

    client_code: int | None
    upstream_code: int | None
    reason: str = ""
    observed_client_code: int | None = None  # what the client leg reported, when it closed first


class WebSocketSession:
    """One accepted client WebSocket and its upstream leg. `close()` may be called from any task."""

    def __init__(
        self,
        accepted: Accepted,
        receive: Receive,
        send: Send,
        config: ProxyConfig,
        hooks: ProxyHooks,
        restarting: Callable[[], bool],
        budget: ReassemblyBudget | None = None,
    ) -> None:
        self._stream: anyio.abc.ByteStream = accepted.stream
        self._ws: Connection = accepted.ws
        self._receive = receive
        self._send = send
        self._config = config
        self._hooks = hooks
        self._restarting = restarting
        self._upstream_lock = anyio.Lock()
        self._ending: _Ending | None = None
        self._relay: anyio.CancelScope | None = None
        self._remote_close: CloseConnection | None = None
        # Set when the upstream's frames can no longer be parsed: its close answer would never be seen.
        self._upstream_unreadable = False
        self._pending = Reassembly(budget)
        self.done = anyio.Event()

    def close(self, code: int, reason: str = "") -> None:
        self._end(_Ending(client_code=code, upstream_code=code, reason=reason))

    def _end(self, ending: _Ending) -> None:
        if self._ending is None:
            self._ending = ending
        if self._relay is not None:
            self._relay.cancel()

    async def run(self) -> None:
        started = anyio.current_time()
        try:
            async with anyio.create_task_group() as tg:
                self._relay = tg.cancel_scope
                if self._ending is not None:
                    tg.cancel_scope.cancel()
                tg.start_soon(self._client_to_upstream)
                if self._config.ws_keepalive_interval is not None:
                    tg.start_soon(self._keepalive, self._config.ws_keepalive_interval)
                await self._upstream_to_client()
                tg.cancel_scope.cancel()
        finally:
            # Given back at once: a cancelled task's frames can sit in reference cycles until a gc pass.
            self._pending.discard()
            # Closing must finish even when the whole request is being cancelled (server shutdown).
            with anyio.CancelScope(shield=True):
                code = INTERNAL_ERROR
                try:
                    code = await self._finish(self._ending or _Ending(GOING_AWAY, GOING_AWAY))
                finally:
                    self._hooks.websocket_closed(code, anyio.current_time() - started)
                    self.done.set()

    async def _finish(self, ending: _Ending) -> int:
        with anyio.move_on_after(CLOSE_GRACE):
            if self._remote_close is not None:
                await self._send_upstream(self._remote_close.response())
            if ending.client_code is not None:
                try:
                    await self._send(
                        {
                            "type": "websocket.close",
                            "code": sendable_close_code(ending.client_code),
                            "reason": sendable_close_reason(ending.reason),
                        }
                    )
                except (RuntimeError, *STREAM_GONE):
                    # The client left in the meantime; servers differ in how they say so.
                    pass
            if ending.upstream_code is not None and self._ws.state in (
                ConnectionState.OPEN,
                ConnectionState.REMOTE_CLOSING,
            ):
                event = CloseConnection(sendable_close_code(ending.upstream_code), sendable_close_reason(ending.reason))
                if await self._send_upstream(event) and not self._upstream_unreadable:
                    await self._await_upstream_close()
        await anyio.aclose_forcefully(self._stream)
        if ending.client_code is not None:
            return sendable_close_code(ending.client_code)
        return ending.observed_client_code or 1005

    async def _await_upstream_close(self) -> None:
        """Read until the upstream answers our close frame (messages in flight are dropped)."""
        while self._ws.state is not ConnectionState.CLOSED:
            data = await self._receive_upstream()
            self._ws.receive_data(data)
            for _ in self._ws.events():
                pass

    async def _receive_upstream(self) -> bytes | None:
        try:
            return await self._stream.receive(RECEIVE_SIZE)
        except (anyio.EndOfStream, *STREAM_GONE):
            return None

    async def _send_upstream(self, event: Event) -> bool:
        """Send one event unless the upstream leg can no longer take it; False if the leg is gone."""
        async with self._upstream_lock:
            state = self._ws.state
            if state is not ConnectionState.OPEN and not (
                isinstance(event, CloseConnection) and state is ConnectionState.REMOTE_CLOSING
            ):
                return False
            data = self._ws.send(event)
            try:
                with anyio.fail_after(self._config.write_timeout):
                    await self._stream.send(data)
            except (TimeoutError, *STREAM_GONE):
                self._upstream_lost()
                return False
            return True

    def _upstream_lost(self) -> None:
        self._hooks.upstream_error("reset")
        self._end(_Ending(code_after_upstream_loss(self._restarting()), None, "upstream went away"))

    async def _send_client(self, message: AsgiMessage) -> bool:
        try:
            with anyio.fail_after(self._config.write_timeout):
                await self._send(message)
        except TimeoutError:
            self._end(_Ending(INTERNAL_ERROR, GOING_AWAY, "client stopped reading"))
            return False
        except STREAM_GONE:
            self._end(_Ending(None, GOING_AWAY, "client went away"))
            return False
        return True

    async def _keepalive(self, interval: float) -> None:
        # Only the upstream leg: pinging the client leg is the ASGI server's job, since ASGI has no
        # ping message (hypercorn: websocket_ping_interval).
        while True:
            await anyio.sleep(interval)
            if not await self._send_upstream(Ping()):
                return

    async def _client_to_upstream(self) -> None:
        limit = self._config.ws_max_message_bytes
        while True:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                code = int(message.get("code", 1005))
                reason = message.get("reason") or ""
                self._end(_Ending(None, sendable_close_code(code), reason, observed_client_code=code))
                return
            if message["type"] != "websocket.receive":
                continue
            text, data = message.get("text"), message.get("bytes")
            event: TextMessage | BytesMessage
            if text is not None:
                event, size = TextMessage(data=text), len(text)
            elif data is not None:
                event, size = BytesMessage(data=data), len(data)
            else:
                continue
            if size > limit:
                self._end(_Ending(MESSAGE_TOO_BIG, MESSAGE_TOO_BIG, "message too big"))
                return
            if not await self._send_upstream(event):
                return
            self._hooks.websocket_message("upstream", size)

    async def _upstream_to_client(self) -> None:
        pending = self._pending
        stall = self._config.ws_message_stall_timeout
        progressed = anyio.current_time()
        while True:
            # Events first: the handshake may have left frames buffered that arrived with the 101.
            for event in self._ws.events():
                if isinstance(event, (TextMessage, BytesMessage)):
                    if not pending.add(event):
                        log.warning("WebSocket closed with 1009: %s (raise the budget if expected)", OVER_BUDGET)
                        self._end(_Ending(MESSAGE_TOO_BIG, MESSAGE_TOO_BIG, OVER_BUDGET))
                        return
                    progressed = anyio.current_time()
                    if event.message_finished:
                        size, message = pending.take()
                        if not await self._send_client(message):
                            return
                        self._hooks.websocket_message("downstream", size)
                elif isinstance(event, Ping):
                    await self._send_upstream(event.response())
                elif isinstance(event, CloseConnection):
                    self._upstream_closed(event)
                    return
            if pending.size and stall is not None:
                # Only a message in progress is timed: an idle WebSocket may stay quiet forever.
                with anyio.move_on_after(progressed + stall - anyio.current_time()):
                    self._ws.receive_data(await self._receive_upstream())
                    continue
                self._end(_Ending(POLICY_VIOLATION, POLICY_VIOLATION, f"message made no progress for {stall:g}s"))
                return
            self._ws.receive_data(await self._receive_upstream())

    def _upstream_closed(self, event: CloseConnection) -> None:
        state = self._ws.state
        if state is ConnectionState.REMOTE_CLOSING:
            # The reply to the upstream's close goes out in _finish, which runs shielded.
            self._remote_close = event
            self._end(_Ending(event.code, None, event.reason or ""))
        elif state is ConnectionState.CLOSED:
            # wsproto reports a vanished peer as a 1006 close and marks the connection closed.
            self._upstream_lost()
        elif event.code == MESSAGE_TOO_BIG:
            # A frame announced more than the message limit (MessageSizeGuard): refused before it arrived.
            self._upstream_unreadable = True
            self._end(_Ending(MESSAGE_TOO_BIG, MESSAGE_TOO_BIG, TOO_BIG))
        else:
            # A frame wsproto could not parse: tell the upstream why, the client only that it broke.
            self._upstream_unreadable = True
            self._hooks.upstream_error("protocol")
            self._end(_Ending(code_after_upstream_loss(False), event.code, event.reason or ""))


async def bridge_websocket(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    resolved: Upstream | Unavailable,
    restarting: Callable[[], bool],
    config: ProxyConfig,
    hooks: ProxyHooks,
    sessions: set[WebSocketSession],
    spare: SpareConnection | None = None,
    budget: ReassemblyBudget | None = None,
) -> None:
    """Relay one WebSocket; with `spare`, the handshake may skip the TCP connect, and the next spare is
    opened once this one is accepted."""
    headers = scope_headers(scope)
    extra = {"request_id": request_id_of(headers)}
    context = f"WebSocket {scope.get('path', '')}"
    if (await receive())["type"] != "websocket.connect":
        return
    if isinstance(resolved, Unavailable):
        refusal = unavailable_refusal(resolved.reason, resolved.retry_after_seconds, resolved.restarting)
        log.warning("%s: %d, %s", context, refusal.status, resolved.reason, extra=extra)
        await deny_websocket_plain(
            scope, send, refusal.status, refusal.text, refusal.close_code, refusal.retry_after_seconds
        )
        return
    upstream = resolved
    context = f"{context} -> {describe(upstream)}"
    client, server = scope.get("client"), scope.get("server")
    hop = ClientHop(
        client_host=client[0] if client else None,
        scheme=scope.get("scheme", "ws"),
        server_port=server[1] if server else None,
        root_path=scope.get("root_path", ""),
    )
    target = request_target(upstream.path_prefix, scope.get("raw_path"), scope["path"], scope.get("query_string", b""))
    request = Request(
        host=upstream_host_value(first_header(headers, b"host"), upstream),
        target=target.decode("ascii"),
        subprotocols=list(scope.get("subprotocols") or []),
        extra_headers=websocket_request_headers(headers, hop),
    )
    try:
        result = await open_websocket(upstream, request, config, spare)
    except UpstreamError as exc:
        hooks.upstream_error(exc.failure.hook_kind)
        refusal = websocket_refusal_for_failure(exc.failure)
        log.warning("%s: %d, %s", context, refusal.status, exc, extra=extra)
        await deny_websocket_plain(scope, send, refusal.status, refusal.text, refusal.close_code)
        return
    if isinstance(result, Rejected):
        log.info("%s: upstream refused the handshake with %d", context, result.status, extra=extra)
        await deny_websocket(
            scope,
            send,
            status=result.status,
            headers=websocket_response_headers(result.headers),
            body=result.body,
            close_code=1008,
            reason=f"upstream refused with {result.status}",
        )
        return
    session = WebSocketSession(result, receive, send, config, hooks, restarting, budget)
    async with anyio.create_task_group() as background:
        if spare is not None:
            # Runs once this task yields: after the 101 below is written, off the handshake's path.
            background.start_soon(spare.refill, upstream)
        try:
            await send(
                {
                    "type": "websocket.accept",
                    "subprotocol": result.subprotocol,
                    "headers": websocket_response_headers(result.headers),
                }
            )
        except BaseException:
            await anyio.aclose_forcefully(result.stream)
            raise
        hooks.websocket_opened()
        sessions.add(session)
        try:
            await session.run()
        finally:
            sessions.discard(session)
