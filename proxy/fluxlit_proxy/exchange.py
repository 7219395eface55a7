"""One request/response cycle on one upstream connection, streamed both ways with backpressure."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import anyio
import h11

from .asgi import Message, Receive, Send
from .config import ProxyConfig
from .connection import STREAM_GONE, UpstreamConnection
from .failures import BodyTooLarge, Failure, UpstreamError
from .headers import BodyFraming, content_length_body, response_headers_for_client
from .reuse import keeps_alive

# Like curl: when the upstream says nothing about "Expect: 100-continue" within a second, send the
# body anyway. (The ASGI server has usually told the client "100 Continue" already; this wait only
# spares the upstream a body it may refuse.)
CONTINUE_WAIT = 1.0
# A bodiless request's response is relayed without a task watching for the client going away until
# this long after the exchange began: almost every response is done by then, and a task group with a
# task costs ~30 us, a sixth of the proxy's own work for a small response. Slow and streaming
# responses get the watcher then, so a client that leaves is noticed at most this much later.
WATCH_CLIENT_AFTER = 0.05

_END = h11.EndOfMessage()


class ClientGone(Exception):
    pass


class ClientStalled(Exception):
    pass


@dataclass
class Client:
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


@dataclass(frozen=True)
class Request:
    """What goes upstream; fixed across the one retry."""

    head: h11.Request
    framing: BodyFraming
    expects_continue: bool


class _Clock:
    """anyio's clock, read once per exchange and then advanced by time.monotonic().

    anyio.current_time() looks up the backend and calls asyncio.get_running_loop() twice (each a
    getpid() syscall on Python 3.11), and a deadline is needed before every wait. time.monotonic()
    runs at the same rate as every backend's clock and is a vDSO call; only its differences are used,
    so the backend clock's offset (trio's is random) does not matter.
    """

    def __init__(self) -> None:
        self._offset = anyio.current_time() - time.monotonic()

    def now(self) -> float:
        return self._offset + time.monotonic()


class _Watchdog:
    """One cancel scope for a whole relay, its deadline re-armed before every wait.

    Far cheaper than a scope per wait; `waiting_on` tells what stalled when it fires: "send" (the
    request), "head", "upstream" (the body), "client", or "watch" when a relay that runs unwatched
    has waited on the upstream past `unwatched_until` (see WATCH_CLIENT_AFTER).
    """

    def __init__(self, config: ProxyConfig, clock: _Clock, unwatched_until: float) -> None:
        self.scope = anyio.CancelScope()
        self.waiting_on = ""
        self._clock = clock
        self._write_timeout = config.write_timeout
        self._read_timeout = config.read_timeout
        self._unwatched_until = unwatched_until

    def arm(self, waiting_on: str, deadline: float) -> None:
        if deadline <= self._unwatched_until or waiting_on in ("client", "send"):
            # Never stop a send half-way for the watcher: its message may or may not have gone out.
            self.waiting_on = waiting_on
            self.scope.deadline = deadline
        else:
            self.waiting_on = "watch"
            self.scope.deadline = self._unwatched_until

    def arm_client(self) -> None:
        self.arm("client", self._clock.now() + self._write_timeout)

    def arm_upstream(self) -> None:
        self.arm("upstream", self._clock.now() + self._read_timeout)


class Exchange:
    """Send the request up, relay the response down.

    A bodiless request (almost all) is relayed by the calling task alone while it is quick. Otherwise
    two tasks: the request side streams the client body up and then watches for the client going
    away; the response side streams the upstream response down. Either ends the other by cancelling.
    """

    def __init__(self, conn: UpstreamConnection, request: Request, client: Client, config: ProxyConfig):
        self._conn = conn
        self._request = request
        self._client = client
        self._config = config
        self.failure: UpstreamError | BodyTooLarge | ClientStalled | None = None
        self.complete = False
        self._clock = _Clock()
        self._cancel: anyio.CancelScope | None = None
        self._watchdog: _Watchdog | None = None
        self._request_sent = False
        # The response-head deadline starts only once the request is sent: uploads may take long.
        self._head_deadline = math.inf
        self._answered = anyio.Event() if request.expects_continue else None
        self._final_head_seen = False
        self._head_relayed = False
        # A Content-Length body is read past h11: how much is still to come, what came with the head, whether
        # the response keeps the connection alive, and whether the upstream sent more than the body.
        self._body_left: int | None = None
        self._received_body = b""
        self._keeps_alive = False
        self._bytes_past_body = False

    async def run(self) -> None:
        if self._request.framing.kind == "none":
            # Head and end of message go out in one write, under the relay's own deadline.
            if await self._relay_guarded(self._clock.now() + WATCH_CLIENT_AFTER):
                return
        else:
            try:
                await self._conn.send(self._request.head, write_timeout=self._config.write_timeout)
            except UpstreamError as exc:
                self.failure = exc
                return
            self._request_sent = True
        async with anyio.create_task_group() as tg:
            self._cancel = tg.cancel_scope
            tg.start_soon(self._request_side)
            await self._relay_guarded(math.inf)
            tg.cancel_scope.cancel()

    async def _relay_guarded(self, unwatched_until: float) -> bool:
        """Relay the response; False if it has to go on with the client watched."""
        try:
            return await self._relay(unwatched_until)
        except (UpstreamError, ClientStalled) as exc:
            self._fail(exc)
        except ClientGone:
            self._client_gone()
        return True

    def _fail(self, exc: UpstreamError | BodyTooLarge | ClientStalled) -> None:
        if self.failure is None:
            self.failure = exc
        if self._cancel is not None:
            self._cancel.cancel()

    def _client_gone(self) -> None:
        self._client.gone = True
        if self._cancel is not None:
            self._cancel.cancel()

    async def _request_side(self) -> None:
        if self._request.framing.kind != "none":
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
                self._head_deadline = self._clock.now() + self._config.read_timeout
                if self._watchdog is not None and self._watchdog.waiting_on == "head":
                    self._watchdog.arm("head", self._head_deadline)
        while not self._client.gone:
            message = await self._client.next_message()
            if message["type"] == "http.disconnect":
                self._client_gone()

    async def _send_body(self) -> bool:
        """Stream the client body up; False when it will not be sent in full."""
        conn, client, timeout = self._conn, self._client, self._config.write_timeout
        if self._answered is not None:
            with anyio.move_on_after(CONTINUE_WAIT):
                await self._answered.wait()
            if self._final_head_seen:
                return False
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
                await conn.send(h11.Data(data=body), write_timeout=timeout)
            if not message.get("more_body", False):
                await conn.send(h11.EndOfMessage(), write_timeout=timeout)
                return True

    async def _relay(self, unwatched_until: float) -> bool:
        """The request if not sent yet, the response head, then its body, to the client; False once a
        wait on the upstream runs past `unwatched_until`, to be resumed where it stopped, watched."""
        config = self._config
        clock = self._clock
        watchdog = self._watchdog = _Watchdog(config, clock, unwatched_until)
        with watchdog.scope:
            if not self._request_sent:
                watchdog.arm("send", clock.now() + config.write_timeout)
                await self._conn.send_unguarded(self._request.head, _END)
                self._request_sent = True
                self._head_deadline = clock.now() + config.read_timeout
            if not self._head_relayed:
                watchdog.arm("head", self._head_deadline)
                response = await self._read_final_head()
                self._client.response_started = True
                self._head_relayed = True
                headers = list(response.headers)  # h11's Headers yields each pair in Python: once only
                start = {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": response_headers_for_client(headers),
                }
                length = content_length_body(self._request.head.method, response.status_code, headers)
                if length is not None:
                    self._body_left = length
                    self._keeps_alive = keeps_alive(response.http_version, headers)
                    self._received_body = self._conn.take_buffered_bytes()
                watchdog.arm_client()
                await self._to_client(start)
            if self._body_left is not None:
                await self._relay_sized_body(watchdog)
            else:
                await self._relay_body_events(watchdog)
            return True
        stalled = watchdog.waiting_on
        if stalled == "watch":
            return False
        if stalled == "client":
            raise ClientStalled(f"client read nothing for {config.write_timeout:g}s")
        if stalled == "send":
            raise UpstreamError(Failure.WRITE_TIMEOUT, f"write blocked for {config.write_timeout:g}s")
        if stalled == "head":
            raise UpstreamError(Failure.READ_TIMEOUT, f"no response head within {config.read_timeout:g}s")
        raise UpstreamError(Failure.READ_TIMEOUT, f"body stalled for {config.read_timeout:g}s")

    async def _relay_sized_body(self, watchdog: _Watchdog) -> None:
        """A Content-Length body, read straight off the stream and passed on chunk by chunk as received.

        What came with the head goes to the client under the head's deadline: one burst, one deadline.
        """
        conn = self._conn
        left = self._body_left
        assert left is not None
        data, self._received_body = self._received_body, b""
        while True:
            if not data and left:
                watchdog.arm_upstream()
                data = await conn.receive()
                if not data:
                    raise UpstreamError(Failure.RESET, f"closed with {left} bytes of the body to come")
                watchdog.arm_client()
            if len(data) > left:
                # The upstream talks past its response: pass on what belongs to it, never reuse.
                data = data[:left]
                self._bytes_past_body = True
            left -= len(data)
            self._body_left = left
            if not left:
                conn.response_ended()
            await self._to_client({"type": "http.response.body", "body": data, "more_body": left > 0})
            data = b""
            if not left:
                conn.end_body_read_past_h11(keeps_alive=self._keeps_alive, bytes_past_body=self._bytes_past_body)
                self.complete = True
                return

    async def _relay_body_events(self, watchdog: _Watchdog) -> None:
        """A chunked or read-until-close body, as h11 parses it."""
        event: h11.Event | None = None
        while True:
            if event is None:
                watchdog.arm_upstream()
                event = await self._conn.next_event()
            watchdog.arm_client()
            if isinstance(event, h11.Data):
                # When the end is already here, say so with the last chunk: one send fewer.
                following = self._conn.buffered_event()
                last = isinstance(following, h11.EndOfMessage)
                if last:
                    self._conn.response_ended()
                await self._to_client({"type": "http.response.body", "body": event.data, "more_body": not last})
                if last:
                    self.complete = True
                    return
                event = following
            elif isinstance(event, h11.EndOfMessage):
                self._conn.response_ended()
                await self._to_client({"type": "http.response.body", "body": b"", "more_body": False})
                self.complete = True
                return
            else:
                raise UpstreamError(Failure.PROTOCOL, f"unexpected {type(event).__name__} in the body")

    async def _read_final_head(self) -> h11.Response:
        while True:
            event = await self._conn.next_event()
            if isinstance(event, h11.Response):
                self._final_head_seen = True
                if self._answered is not None:
                    self._answered.set()
                return event
            if isinstance(event, h11.InformationalResponse):
                # 1xx are for this hop only; ASGI has no way to pass them on anyway.
                if event.status_code == 101:
                    raise UpstreamError(Failure.PROTOCOL, "101 Switching Protocols to a plain request")
                if event.status_code == 100 and self._answered is not None:
                    self._answered.set()
                continue
            if isinstance(event, h11.ConnectionClosed):
                raise UpstreamError(Failure.RESET, "closed before responding")
            raise UpstreamError(Failure.PROTOCOL, f"unexpected {type(event).__name__} before the response")

    async def _to_client(self, message: Message) -> None:
        try:
            await self._client.send(message)
        except STREAM_GONE:
            raise ClientGone from None
