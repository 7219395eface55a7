"""Every touch of hypercorn internals, each guarded by the versions it was checked against: the one facade.

No other module imports from hypercorn beyond its public `hypercorn.config` (tests/supervisor/test_hypercorn_patch.py
checks it). On a hypercorn release not listed below, nothing is patched and a WARNING names the code to re-read.

0. `serve_asgi`: hypercorn's asyncio worker run on sockets bound by the caller (`worker_serve`, `wrap_app`).
1. The asyncio TCPServer releases a connection as soon as its client closes it.
2. Client WebSockets get keepalive pings with a timeout, a stall timeout, a reassembly budget shared by every
   connection, refusal by announced frame length, and their buffers freed on close (section below).

On 1:

hypercorn 0.18.0 (``hypercorn/asyncio/tcp_server.py``, ``TCPServer.run``) keeps the connection's task group
open after ``_read_data()`` returns on EOF while the idle task (a ``keep_alive_timeout`` timer started when the
connection went idle) is still pending, so every connection a client opens, uses once and closes holds a file
descriptor in CLOSE_WAIT until that timer fires. Stopping the idle task once the reader is done lets ``run``
close the socket at once; a request still in flight when the client half-closes runs on and its response is
sent (as before), then the connection closes instead of waiting as idle. Graceful shutdown never needs the idle
task of a connection whose client has gone.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import anyio
from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.utils import wrap_app
from wsproto.events import CloseConnection, Message, Ping

from fluxlit_supervisor.websocket.frames import FrameLengthScanner
from fluxlit_supervisor.websocket.memory_budget import MemoryBudget
from fluxlit_supervisor.websocket.watchdog import (
    MESSAGE_TOO_BIG,
    SendClose,
    SendPing,
    StreamWatch,
    WaitUntil,
    WebSocketLimits,
    next_action,
)

logger = logging.getLogger("supervisor")


async def serve_asgi(
    app: Callable[..., Awaitable[None]],
    config: Config,
    sockets: Sockets,
    shutdown_trigger: Callable[[], Awaitable[Any]],
) -> None:
    """Run hypercorn's asyncio worker on pre-bound sockets until `shutdown_trigger` returns and it drains."""
    # hypercorn types scopes as TypedDicts; our ASGI apps are the generic ASGI3 shape.
    wrapped = wrap_app(cast(Any, app), config.wsgi_max_body_size, "asgi")
    await worker_serve(wrapped, config, sockets=sockets, shutdown_trigger=shutdown_trigger)


# The hypercorn releases whose TCPServer internals this patch was read against and tested with.
VERIFIED_VERSIONS = ("0.18.0",)
# No upstream issue is filed for this yet; this is the code the patch was read against.
RELEASE_UPSTREAM_CODE = "https://github.com/pgjones/hypercorn/blob/0.18.0/src/hypercorn/asyncio/tcp_server.py"
_MARK = "_supervisor_releases_closed_connections"
_warned: list[str] = []


def _warn_once(key: str, message: str, *args: object) -> None:
    """One WARNING per patch and hypercorn version: every server start would otherwise repeat it."""
    if key not in _warned:
        _warned.append(key)
        logger.warning(message, *args)


def release_closed_connections() -> bool:
    """Patch hypercorn's asyncio TCPServer once (idempotent); False, with a WARNING naming the upstream code, when
    the installed hypercorn is not a version the patch was checked against or lacks what it patches."""
    version = _hypercorn_version()
    if version not in VERIFIED_VERSIONS:
        _warn_once(
            f"release {version}",
            "hypercorn %s is not a version the connection-release patch was checked against (%s): a connection "
            "its client closed stays open until keep_alive_timeout; re-read the patch in hypercorn_fixes.py "
            "against %s",
            version,
            ", ".join(VERIFIED_VERSIONS),
            RELEASE_UPSTREAM_CODE,
        )
        return False
    try:
        from hypercorn.asyncio.tcp_server import TCPServer  # only once the version is known to have it
    except ImportError as exc:
        _warn_once(
            f"release {version} import",
            "hypercorn connection-release patch skipped: %s (see %s)",
            exc,
            RELEASE_UPSTREAM_CODE,
        )
        return False
    read_data = getattr(TCPServer, "_read_data", None)
    if read_data is None or not callable(read_data):
        _warn_once(
            f"release {version} read_data",
            "hypercorn connection-release patch skipped: TCPServer has no _read_data (see %s)",
            RELEASE_UPSTREAM_CODE,
        )
        return False
    if getattr(read_data, _MARK, False):
        return True
    setattr(TCPServer, "_read_data", _stopping_idle_task_after(read_data))  # noqa: B010 - typed assignment is refused
    return True


class _NoIdleTimer:
    """Stands in for a connection's idle task once its client has closed: no timer is started again."""

    async def restart(self, task_group: object, action: Callable[[], Awaitable[None]]) -> None:
        return None

    async def stop(self) -> None:
        return None


_NO_IDLE_TIMER = _NoIdleTimer()


ReadData = Callable[[Any], Coroutine[Any, Any, None]]


def _stopping_idle_task_after(read_data: ReadData) -> ReadData:
    @functools.wraps(read_data)
    async def read_data_then_stop_idle_task(self: Any) -> None:
        await read_data(self)
        idle_task = getattr(self, "idle_task", None)
        if idle_task is not None:
            await idle_task.stop()
            # A response still in flight ends by marking the connection idle again, which would restart the
            # timer; no further request can arrive on a closed reader, so the connection closes when it ends.
            self.idle_task = _NO_IDLE_TIMER

    setattr(read_data_then_stop_idle_task, _MARK, True)
    return read_data_then_stop_idle_task


def _hypercorn_version() -> str:
    try:
        return importlib.metadata.version("hypercorn")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# ----------------------------------------------------------------------------- client WebSockets
#
# hypercorn 0.18.0 (hypercorn/protocol/ws_stream.py) has four gaps on the client leg of a WebSocket:
# - `_send_pings` sleeps `websocket_ping_interval` between pings and checks `closed` only when it wakes, so a
#   closed WebSocket keeps a task for up to one interval and a graceful stop waits for it (11.6 s instead of
#   0.5 s measured with a 20 s interval); and nothing ever reads the answers: there is no ping timeout.
# - `WebsocketBuffer` bounds one message (`websocket_max_message_size`) but not all of them together, keeps
#   what it holds after refusing a message, and is freed with its stream only by a garbage-collection pass
#   (the stream sits in reference cycles once closed): 4 unfinished 200 MiB messages kept 800 MiB after close.
# - a frame announcing 2**40 bytes is refused only once the limit's worth of its payload has arrived.
# - a partial message may wait forever for its next fragment.
# The patch wraps two WSStream methods and swaps each stream's buffer; it does nothing for a Config without
# `websocket_limits`. Pings come from one watchdog task per stream (websocket/watchdog.py), which ends
# with the stream; hypercorn's own `websocket_ping_interval` stays None.

WEBSOCKET_VERIFIED_VERSIONS = ("0.18.0",)
# No upstream issue is filed for these yet; this is the code the patch was read against.
WEBSOCKET_UPSTREAM_CODE = "https://github.com/pgjones/hypercorn/blob/0.18.0/src/hypercorn/protocol/ws_stream.py"
_WS_MARK = "_supervisor_guards_websockets"
_GUARD = "_supervisor_websocket_guard"
# How long sending our own ping or close frame may block on a client that stopped reading.
CLOSE_SEND_TIMEOUT = 1.0


class SupervisedConfig(Config):
    """hypercorn's Config plus the limits the WebSocket patch enforces (None: hypercorn's own behaviour)."""

    websocket_limits: WebSocketLimits | None = None


def guard_websockets() -> bool:
    """Patch hypercorn's WSStream once (idempotent); False, with a WARNING naming the upstream code, when the
    installed hypercorn is not a version the patch was checked against (then nothing is patched)."""
    version = _hypercorn_version()
    if version not in WEBSOCKET_VERIFIED_VERSIONS:
        _warn_once(
            f"websocket {version}",
            "hypercorn %s is not a version the WebSocket patch was checked against (%s): client WebSockets "
            "get no keepalive pings, no ping timeout, no stall timeout and no reassembly budget; "
            "re-read the patch in hypercorn_fixes.py against %s",
            version,
            ", ".join(WEBSOCKET_VERIFIED_VERSIONS),
            WEBSOCKET_UPSTREAM_CODE,
        )
        return False
    # Imported only once the version is known: another release may have moved or renamed them.
    from hypercorn.protocol import events, ws_stream

    stream_class = ws_stream.WSStream
    if getattr(stream_class.handle, _WS_MARK, False):
        return True
    buffer_class = budgeted_buffer_class(ws_stream.WebsocketBuffer, ws_stream.FrameTooLargeError)
    handle = _guarded_handle(stream_class.handle, buffer_class, events)
    setattr(stream_class, "handle", handle)  # noqa: B010 - typed assignment is refused
    setattr(stream_class, "_accept", _watched_accept(stream_class._accept))  # noqa: B010
    return True


@functools.cache
def budgeted_buffer_class(base: type[Any], too_large: type[Exception]) -> type[Any]:
    """hypercorn's per-message buffer that charges the shared budget and frees what it held when it refuses."""

    class BudgetedBuffer(base):  # type: ignore[misc]
        def __init__(self, max_length: int, budget: MemoryBudget | None) -> None:
            super().__init__(max_length)
            self._budget = budget
            self._charged = 0
            self.refused = False

        def extend(self, event: Message[Any]) -> None:
            size = len(event.data)
            if self.refused:
                raise too_large()
            over = self.length + size > self.max_length
            if over or (self._budget is not None and not self._budget.reserve(size)):
                if not over:
                    logger.warning("client WebSocket closed with 1009: the reassembly budget is spent")
                self.refused = True
                self.clear()
                raise too_large()  # hypercorn answers it with a 1009 close
            self._charged += size
            super().extend(event)

        def clear(self) -> None:
            if self._budget is not None and self._charged:
                self._budget.release(self._charged)
            self._charged = 0
            super().clear()

    return BudgetedBuffer


class _StreamGuard:
    """Per-stream state shared by the patched `handle` (which records) and the watchdog task (which acts).

    Times are the event loop's clock. The watchdog sleeps on an event that a timer or the stream sets, never
    in a cancelled wait: Python 3.11's tracer loses a coroutine resumed by throw() (cpython#106749), and an
    uncancelled wait is cheaper too. hypercorn's asyncio worker only: the supervisor serves with nothing else.
    """

    def __init__(self, limits: WebSocketLimits, max_message: int) -> None:
        self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        self.limits = limits
        self.watch = StreamWatch(opened_at=now, last_inbound=now)
        self.scanner = FrameLengthScanner(max_message)
        self.accepted = False
        self.refusing = False  # a close frame went out: whatever the client sends now is dropped unparsed
        self.ended = False
        self._held = 0
        self._wake = asyncio.Event()

    def now(self) -> float:
        return self._loop.time()

    def heard(self) -> None:
        """Bytes came from the client: they answer an outstanding ping, so the next one is due an interval on."""
        answered = self.watch.ping_outstanding
        self.watch.last_inbound = self.now()
        if answered:
            self._wake.set()

    def begin_close(self) -> None:
        self.refusing = True
        self.watch.closing_since = self.now()
        self._wake.set()

    def end(self) -> None:
        self.ended = True
        self._wake.set()

    def saw(self, buffer: Any) -> None:
        """After hypercorn handled client bytes: did it refuse a message, and is a partial one still growing?"""
        if buffer.refused:
            self.begin_close()
            return
        if not buffer.length:
            self.watch.progress_at = None
        elif buffer.length != self._held:
            if self.watch.progress_at is None:
                self._wake.set()  # a stall deadline now exists
            self.watch.progress_at = self.now()
        self._held = buffer.length

    async def sleep_until(self, at: float | None) -> None:
        """Until `at`, or sooner when the stream reports something."""
        timer = self._loop.call_at(at, self._wake.set) if at is not None else None
        try:
            await self._wake.wait()
        finally:
            if timer is not None:
                timer.cancel()
            self._wake.clear()


Handle = Callable[[Any, Any], Coroutine[Any, Any, None]]


def _guarded_handle(handle: Handle, buffer_class: type[Any], events: Any) -> Handle:
    request, stream_closed, data = events.Request, events.StreamClosed, (events.Data, events.Body)

    @functools.wraps(handle)
    async def handle_guarded(self: Any, event: Any) -> None:
        guard: _StreamGuard | None = self.__dict__.get(_GUARD)
        if guard is None:
            limits = getattr(self.config, "websocket_limits", None)
            if limits is not None and isinstance(event, request):
                self.buffer = buffer_class(self.config.websocket_max_message_size, limits.budget)
                self.__dict__[_GUARD] = _StreamGuard(limits, self.config.websocket_max_message_size)
            await handle(self, event)
        elif isinstance(event, stream_closed):
            try:
                await handle(self, event)
            finally:
                self.buffer.clear()  # freed now, not when a gc pass collects the closed stream
                guard.end()
        elif isinstance(event, data) and guard.accepted and not self.closed:
            guard.heard()
            if guard.refusing:
                return
            if not guard.scanner.feed(event.data):
                self.buffer.clear()
                await _send_within(self, CloseConnection(code=MESSAGE_TOO_BIG, reason="message too big"))
                guard.begin_close()
                return
            await handle(self, event)
            guard.saw(self.buffer)
        else:
            await handle(self, event)

    setattr(handle_guarded, _WS_MARK, True)
    return handle_guarded


Accept = Callable[[Any, Any], Coroutine[Any, Any, None]]


def _watched_accept(accept: Accept) -> Accept:
    @functools.wraps(accept)
    async def accept_watched(self: Any, message: Any) -> None:
        await accept(self, message)
        guard: _StreamGuard | None = self.__dict__.get(_GUARD)
        if guard is not None and not guard.ended:
            guard.accepted = True
            guard.watch.opened_at = guard.watch.last_inbound = guard.now()
            self.task_group.spawn(_watch_stream, self, guard)

    return accept_watched


async def _watch_stream(stream: Any, guard: _StreamGuard) -> None:
    """Pings, ping timeout, stall timeout and close grace of one stream; returns as soon as the stream ends."""
    limits = guard.limits
    while not guard.ended:
        action = next_action(limits, guard.watch, guard.now())
        if isinstance(action, WaitUntil):
            await guard.sleep_until(action.at)
        elif isinstance(action, SendPing):
            guard.watch.ping_sent_at = guard.now()
            # A ping that cannot even be written within the timeout is unanswered: the next turn says so.
            await _send_within(stream, Ping(), limits.ping_timeout)
        elif isinstance(action, SendClose):
            await _send_within(stream, CloseConnection(code=action.code, reason=action.reason))
            if action.linger:
                guard.begin_close()
            else:
                await _end_stream(stream, guard)
        else:
            await _end_stream(stream, guard)


async def _send_within(stream: Any, event: Any, within: float = CLOSE_SEND_TIMEOUT) -> None:
    with anyio.move_on_after(within):
        await stream._send_wsproto_event(event)


async def _end_stream(stream: Any, guard: _StreamGuard) -> None:
    from hypercorn.protocol.events import StreamClosed  # version-guarded like the patch that calls this

    # hypercorn's own way to end a stream: the app gets websocket.disconnect, then the connection closes.
    if not guard.ended:
        await stream.send(StreamClosed(stream_id=stream.stream_id))
    guard.end()
