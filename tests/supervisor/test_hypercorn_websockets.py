"""The hypercorn WebSocket patch, over real loopback connections: pings and their timeout, a stall timeout, one
reassembly budget, refusal by announced length, memory freed on close, no task left behind, prompt stops.

Tests named `test_unpatched_...` show the hypercorn behaviour the patch exists for; when one fails, hypercorn
changed it upstream and that part of the patch can go.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import inspect
import logging
import os
import socket
import struct
import time
import tracemalloc
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from fluxlit_supervisor import hypercorn_fixes
from fluxlit_supervisor.hypercorn_fixes import WEBSOCKET_UPSTREAM_CODE, guard_websockets
from fluxlit_supervisor.serve import ServeConfig, build_hypercorn_config
from fluxlit_supervisor.websocket.memory_budget import MemoryBudget
from fluxlit_supervisor.websocket.watchdog import WebSocketLimits
from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.protocol.ws_stream import WebsocketBuffer, WSStream
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Event, Ping, Request, TextMessage

pytestmark = pytest.mark.anyio


class EchoApp:
    """Accepts, echoes text and bytes, and records how each WebSocket ended for the app.

    With `keep_send`, it keeps each connection's `send` after the end, as an app caught in a reference cycle does
    until a gc pass (FluxLit's proxy was: a cancelled task's traceback held its session, and the session `send`).
    """

    def __init__(self, *, keep_send: bool = False) -> None:
        self.disconnects: list[int] = []
        self.disconnected = asyncio.Event()
        self.kept: list[Any] = []
        self._keep_send = keep_send

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        if self._keep_send:
            self.kept.append(send)
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.disconnects.append(int(message.get("code", 1005)))
                self.disconnected.set()
                return
            await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})


@asynccontextmanager
async def serving(
    app: Any, websocket: WebSocketLimits | None, *, plain: bool = False, **options: Any
) -> AsyncGenerator[tuple[int, asyncio.Task[None], asyncio.Event], None]:
    """hypercorn on a free port, configured by build_hypercorn_config (or a plain hypercorn Config)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = int(listener.getsockname()[1])
    bind = f"fd://{os.dup(listener.fileno())}"
    unwrapped = {name: getattr(WSStream, name) for name in ("handle", "_accept")}
    if plain:  # hypercorn's own methods, as it ships them
        for name, method in unwrapped.items():
            setattr(WSStream, name, getattr(method, "__wrapped__", method))
        config = Config()
        config.bind = [bind]
        for name, value in {"graceful_timeout": 5.0, **options}.items():
            setattr(config, name, value)
    else:
        config = build_hypercorn_config(ServeConfig(binds=(bind,), websocket=websocket, hypercorn_options=options))
    stop = asyncio.Event()
    task = asyncio.ensure_future(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    try:
        yield port, task, stop
    finally:
        stop.set()
        with anyio.move_on_after(10):
            await task
        listener.close()
        for name, method in unwrapped.items():
            setattr(WSStream, name, method)


class Client:
    """A raw WebSocket client: it answers nothing unless told to, so pings and closes can be watched."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.eof = False

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        client.writer.write(client.ws.send(Request(host="a", target="/ws")))
        assert isinstance(await client.next_event(), AcceptConnection)
        return client

    async def next_event(self, within: float = 5.0) -> Event | None:
        """The next event, or None at end of input; fails after `within` seconds of silence."""
        with anyio.fail_after(within):
            while True:
                for event in self.ws.events():
                    return event
                if self.eof:
                    return None
                data = await self.reader.read(65536)
                self.eof = not data
                if data:
                    self.ws.receive_data(data)

    async def events_for(self, seconds: float) -> list[Event]:
        seen: list[Event] = []
        with anyio.move_on_after(seconds):
            while (event := await self.next_event(seconds + 1)) is not None:
                seen.append(event)
        return seen

    def send(self, event: Event) -> None:
        self.writer.write(self.ws.send(event))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def close(self) -> None:
        self.writer.close()


def masked_header(opcode: int, length: int, *, fin: bool = True) -> bytes:
    """A client frame header (masked, RFC 6455 5.2) announcing `length` bytes, with a zero mask."""
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return bytes([first, 0x80 | length]) + bytes(4)
    if length < 1 << 16:
        return bytes([first, 0x80 | 126]) + struct.pack("!H", length) + bytes(4)
    return bytes([first, 0x80 | 127]) + struct.pack("!Q", length) + bytes(4)


async def wait_until(condition: Any, within: float = 5.0) -> None:
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - tasks and allocations have no event to wait on
            await anyio.sleep(0.01)


def tasks_named(name: str) -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if getattr(task.get_coro(), "__name__", "") == name]


@pytest.fixture
def gc_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# ----------------------------------------------------------------------------- pings


async def test_an_idle_websocket_is_pinged_every_interval_while_it_answers() -> None:
    async with serving(EchoApp(), WebSocketLimits(ping_interval=0.2, ping_timeout=5)) as (port, _, _):
        client = await Client.connect(port)
        pings = 0
        with anyio.move_on_after(1.1):
            while True:
                event = await client.next_event()
                assert isinstance(event, Ping), event
                pings += 1
                client.send(event.response())
        client.close()
    assert 4 <= pings <= 6


async def test_a_client_that_never_answers_a_ping_is_closed_with_1011_and_the_app_told() -> None:
    app = EchoApp()
    async with serving(app, WebSocketLimits(ping_interval=0.2, ping_timeout=0.3)) as (port, _, _):
        client = await Client.connect(port)
        started = time.monotonic()
        events = await client.events_for(3)
        ended_after = time.monotonic() - started
        with anyio.fail_after(2):
            await app.disconnected.wait()
        client.close()
    assert isinstance(events[0], Ping)
    assert isinstance(events[-1], CloseConnection)
    assert events[-1].code == 1011
    assert client.eof
    assert 0.4 <= ended_after < 1.5  # interval + timeout, not the 3 s the client would have waited
    assert app.disconnects == [1006]  # hypercorn's code for a stream that ended without the app closing it


async def test_any_bytes_from_the_client_answer_a_ping() -> None:
    async with serving(EchoApp(), WebSocketLimits(ping_interval=0.2, ping_timeout=0.3)) as (port, _, _):
        client = await Client.connect(port)
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            client.send(TextMessage(data="still here"))
            event = await client.next_event()
            assert not isinstance(event, CloseConnection)
        client.close()


async def test_a_closed_websocket_leaves_no_task_behind_and_a_stop_after_sessions_is_prompt() -> None:
    app = EchoApp()
    limits = WebSocketLimits(ping_interval=20.0)
    async with serving(app, limits, graceful_timeout=5.0) as (port, task, stop):
        for _ in range(3):
            client = await Client.connect(port)
            client.send(CloseConnection(code=1000))
            assert isinstance(await client.next_event(), CloseConnection)
            client.close()
        await wait_until(lambda: len(app.disconnects) == 3)
        await wait_until(lambda: not tasks_named("_watch_stream"), within=1.0)
        started = time.monotonic()
        stop.set()
        with anyio.fail_after(4):
            await task
    assert time.monotonic() - started < 1.0


async def test_unpatched_hypercorn_pings_outlive_the_websocket_and_hold_up_the_stop() -> None:
    app = EchoApp()
    async with serving(app, None, plain=True, websocket_ping_interval=20.0, graceful_timeout=1.5) as (port, task, stop):
        client = await Client.connect(port)
        assert isinstance(await client.next_event(), Ping)  # hypercorn pings once at accept
        client.send(CloseConnection(code=1000))
        assert isinstance(await client.next_event(), CloseConnection)
        client.close()
        await wait_until(lambda: app.disconnects == [1000] or app.disconnects == [1006])
        await anyio.sleep(0.2)
        assert tasks_named("_send_pings"), "hypercorn's ping loop now ends with its WebSocket"
        started = time.monotonic()
        stop.set()
        with anyio.fail_after(5):
            await task
    assert time.monotonic() - started >= 1.4, "a stop no longer waits for the ping loop: the watchdog can go"


def test_unpatched_hypercorn_has_no_ping_timeout() -> None:
    """If hypercorn grows one (and closes unanswered clients), the watchdog's pings can go."""
    assert not [name for name in dir(Config) if "ping" in name and "timeout" in name]


# ----------------------------------------------------------------------------- limits


async def test_a_frame_announcing_more_than_the_limit_is_refused_with_1009_at_its_header() -> None:
    app = EchoApp()
    async with serving(app, WebSocketLimits(), websocket_max_message_size=1000) as (port, _, _):
        client = await Client.connect(port)
        client.send_raw(masked_header(0x2, 2**40) + bytes(100))
        event = await client.next_event(within=2)
        with anyio.fail_after(3):
            await app.disconnected.wait()
        client.close()
    assert isinstance(event, CloseConnection)
    assert event.code == 1009


async def test_after_a_refusal_the_client_is_not_read_and_the_connection_ends_after_the_close_grace() -> None:
    app = EchoApp()
    limits = WebSocketLimits(close_grace=0.3)
    async with serving(app, limits, websocket_max_message_size=1000) as (port, _, _):
        client = await Client.connect(port)
        client.send_raw(masked_header(0x2, 5000))
        refused = await client.next_event()
        started = time.monotonic()
        client.send_raw(bytes(200))  # not parsed: it would be the oversized frame's payload
        assert await client.next_event() is None
        ended_after = time.monotonic() - started
        client.close()
    assert isinstance(refused, CloseConnection)
    assert refused.code == 1009
    assert 0.2 <= ended_after < 1.5


async def test_data_before_the_accept_is_still_refused_by_hypercorn() -> None:
    async def slow_accept(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await anyio.sleep(0.5)
            await send({"type": "websocket.accept"})

    async with serving(slow_accept, WebSocketLimits()) as (port, _, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        ws = WSConnection(ConnectionType.CLIENT)
        writer.write(ws.send(Request(host="a", target="/ws")) + masked_header(0x1, 2) + b"hi")
        with anyio.fail_after(5):
            head = await reader.readuntil(b"\r\n")
        writer.close()
    assert head.startswith(b"HTTP/1.1 400")


def test_the_budgeted_buffer_refuses_everything_after_its_first_refusal() -> None:
    from hypercorn.protocol.ws_stream import FrameTooLargeError

    budget = MemoryBudget(10)
    buffer = hypercorn_fixes.budgeted_buffer_class(WebsocketBuffer, FrameTooLargeError)(100, budget)
    buffer.extend(BytesMessage(data=b"x" * 8, message_finished=False))
    with pytest.raises(FrameTooLargeError):
        buffer.extend(BytesMessage(data=b"x" * 8, message_finished=False))
    assert (budget.held, buffer.length) == (0, 0)
    with pytest.raises(FrameTooLargeError):
        buffer.extend(BytesMessage(data=b"x", message_finished=True))


async def test_unpatched_hypercorn_waits_for_the_payload_of_an_oversized_frame() -> None:
    async with serving(EchoApp(), None, plain=True, websocket_max_message_size=1000) as (port, _, _):
        client = await Client.connect(port)
        client.send_raw(masked_header(0x2, 2**40) + bytes(100))
        assert await client.events_for(0.5) == [], "hypercorn now refuses by announced length: the scanner can go"
        client.close()


async def test_a_split_header_and_small_messages_pass_the_length_check() -> None:
    async with serving(EchoApp(), WebSocketLimits(), websocket_max_message_size=1000) as (port, _, _):
        client = await Client.connect(port)
        frame = client.ws.send(BytesMessage(data=b"x" * 1000))
        for index in range(len(frame)):  # one byte at a time: every header split
            client.send_raw(frame[index : index + 1])
            await client.writer.drain()
        event = await client.next_event()
        client.close()
    assert isinstance(event, BytesMessage)
    assert event.data == b"x" * 1000


async def test_partial_messages_of_every_connection_share_one_budget() -> None:
    budget = MemoryBudget(1500)
    app = EchoApp()
    async with serving(app, WebSocketLimits(budget=budget), websocket_max_message_size=10_000) as (port, _, _):
        first, second = await Client.connect(port), await Client.connect(port)
        first.send(BytesMessage(data=b"a" * 1000, message_finished=False))
        await wait_until(lambda: budget.held == 1000)
        second.send(BytesMessage(data=b"b" * 1000, message_finished=False))
        refused = await second.next_event()
        assert budget.held == 1000
        first.send(BytesMessage(data=b"c" * 100))
        echoed = await first.next_event()
        await wait_until(lambda: budget.held == 0)
        first.close()
        second.close()
    assert isinstance(refused, CloseConnection)
    assert refused.code == 1009
    assert isinstance(echoed, BytesMessage)
    assert echoed.data == b"a" * 1000 + b"c" * 100


async def test_a_partial_message_that_stops_growing_is_closed_with_1008() -> None:
    app = EchoApp()
    limits = WebSocketLimits(stall_timeout=0.3, close_grace=0.2)
    async with serving(app, limits) as (port, _, _):
        client = await Client.connect(port)
        client.send(TextMessage(data="part", message_finished=False))
        started = time.monotonic()
        events = await client.events_for(3)
        with anyio.fail_after(2):
            await app.disconnected.wait()
        client.close()
    assert [(type(e).__name__, getattr(e, "code", None)) for e in events] == [("CloseConnection", 1008)]
    assert client.eof
    assert time.monotonic() - started < 2


async def bytes_held_after_closing_mid_message(port: int, app: EchoApp, size: int) -> int:
    """Bytes still allocated once a client that sent `size` bytes of an unfinished message has closed."""
    tracemalloc.start()
    try:
        client = await Client.connect(port)
        client.send(BytesMessage(data=bytes(size), message_finished=False))
        await wait_until(lambda: tracemalloc.get_traced_memory()[0] >= size)
        client.close()
        await wait_until(lambda: app.disconnects)
        await anyio.sleep(0.2)
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


async def test_a_closed_websocket_gives_its_partial_message_back_without_a_gc_pass(gc_off: None) -> None:
    size = 8 * 1024 * 1024
    app = EchoApp(keep_send=True)
    async with serving(app, WebSocketLimits(), websocket_max_message_size=2 * size) as (port, _, _):
        held_after = await bytes_held_after_closing_mid_message(port, app, size)
    assert held_after < size // 4, f"{held_after} bytes still held after the WebSocket closed"


async def test_unpatched_hypercorn_keeps_a_closed_streams_partial_message_while_the_stream_lives(
    gc_off: None,
) -> None:
    size = 8 * 1024 * 1024
    app = EchoApp(keep_send=True)
    async with serving(app, None, plain=True, websocket_max_message_size=2 * size) as (port, _, _):
        held_after = await bytes_held_after_closing_mid_message(port, app, size)
    assert held_after >= size, "hypercorn now clears a closed stream's buffer: the explicit clear can go"


async def test_without_limits_the_patched_stream_behaves_as_hypercorns() -> None:
    guard_websockets()
    async with serving(EchoApp(), None) as (port, _, _):
        client = await Client.connect(port)
        client.send(TextMessage(data="hi"))
        echoed = await client.next_event()
        assert await client.events_for(0.3) == []  # no pings
        client.close()
    assert isinstance(echoed, TextMessage)
    assert echoed.data == "hi"


# ----------------------------------------------------------------------------- versions


def test_an_unverified_hypercorn_is_not_patched_and_a_warning_names_the_upstream_code(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    guard_websockets()
    monkeypatch.setattr(WSStream, "handle", WSStream.handle.__wrapped__)  # type: ignore[attr-defined]
    monkeypatch.setattr(WSStream, "_accept", WSStream._accept.__wrapped__)  # type: ignore[attr-defined]
    monkeypatch.setattr(hypercorn_fixes, "_hypercorn_version", lambda: "99.0")
    monkeypatch.setattr(hypercorn_fixes, "_warned", [])
    with caplog.at_level(logging.WARNING, logger="supervisor"):
        assert guard_websockets() is False
        assert guard_websockets() is False
    assert not hasattr(WSStream.handle, "__wrapped__")
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "hypercorn 99.0 is not a version the WebSocket patch was checked against" in warnings[0].getMessage()
    assert WEBSOCKET_UPSTREAM_CODE in warnings[0].getMessage()


def test_the_patched_hypercorn_code_is_the_code_the_patch_was_read_against() -> None:
    """A changed WSStream or WebsocketBuffer needs the patch re-read; then record the new fingerprint here."""
    guard_websockets()
    pieces = [
        WebsocketBuffer,
        WSStream.__init__,
        WSStream.handle.__wrapped__,  # type: ignore[attr-defined]
        WSStream._accept.__wrapped__,  # type: ignore[attr-defined]
        WSStream._handle_events,
        WSStream._send_wsproto_event,
        WSStream.app_send,
    ]
    source = "".join(inspect.getsource(piece) for piece in pieces)
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == "d4ca2e1b3195b241"


def test_websocket_limits_and_hypercorns_own_pings_are_not_combined() -> None:
    with pytest.raises(ValueError, match=r"ping through WebSocketLimits\.ping_interval only"):
        ServeConfig(websocket=WebSocketLimits(), hypercorn_options={"websocket_ping_interval": 5.0})
