"""Limits on what the upstream leg holds: a frame refused by its announced length, one budget shared by every
session, a message that stops growing, and memory given back when a session ends (no garbage collection needed)."""

from __future__ import annotations

import gc
import struct
import tracemalloc
from collections.abc import Iterator

import anyio
import pytest
from fluxlit_proxy import ProxyConfig, Upstream
from fluxlit_proxy.ws_limits import MessageSizeGuard
from websockets.asyncio.client import connect
from wsproto.events import BytesMessage, CloseConnection, TextMessage
from wsproto.frame_protocol import CloseReason, Opcode, RsvBits

from tests.proxy._peers import closed_code, wait_until

pytestmark = pytest.mark.anyio


class Budget:
    """The smallest ReassemblyBudget: a counter against a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def reserve(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def release(self, size: int) -> None:
        self.held -= size


def frame_header(opcode: int, length: int, *, fin: bool) -> bytes:
    """An unmasked server frame header (RFC 6455 5.2) announcing `length` payload bytes."""
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return bytes([first, length])
    if length < 1 << 16:
        return bytes([first, 126]) + struct.pack("!H", length)
    return bytes([first, 127]) + struct.pack("!Q", length)


@pytest.fixture
def gc_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


NO_HEADER_BITS = RsvBits(False, False, False)


@pytest.mark.parametrize(
    ("frames", "refused_at"),
    [
        # (opcode, announced length) in arrival order; the index of the first refused frame, or None
        ([(Opcode.BINARY, 100)], None),
        ([(Opcode.BINARY, 101)], 0),
        ([(Opcode.TEXT, 60), (Opcode.CONTINUATION, 40)], None),
        ([(Opcode.TEXT, 60), (Opcode.CONTINUATION, 41)], 1),
        ([(Opcode.TEXT, 60), (Opcode.PING, 125), (Opcode.CONTINUATION, 40)], None),  # control frames don't count
        ([(Opcode.BINARY, 100), (Opcode.BINARY, 100)], None),  # each message starts from zero
        ([(Opcode.BINARY, 2**40)], 0),
    ],
)
def test_the_guard_refuses_by_announced_length(frames: list[tuple[Opcode, int]], refused_at: int | None) -> None:
    guard = MessageSizeGuard(100)
    verdicts = [guard.frame_inbound_header(None, opcode, NO_HEADER_BITS, length) for opcode, length in frames]  # type: ignore[arg-type]
    refused = [i for i, verdict in enumerate(verdicts) if verdict is CloseReason.MESSAGE_TOO_BIG]
    assert (refused[0] if refused else None) == refused_at
    assert all(verdict == NO_HEADER_BITS for verdict in verdicts[: refused_at if refused else None])


def test_the_guard_is_never_offered_in_a_handshake() -> None:
    guard = MessageSizeGuard(100)
    assert guard.enabled() is True
    assert guard.offer() is False


async def test_a_frame_announcing_more_than_the_limit_is_refused_before_its_payload_arrives(
    stack_factory, raw_ws_server
):
    received = []

    async def upstream(conn):
        # Only the header of a 2**40-byte frame: without the announced-length check, the proxy waits for it.
        await conn.stream.send(frame_header(0x2, 2**40, fin=True))
        received.append(await conn.next_event())

    config = ProxyConfig(ws_max_message_bytes=1000)
    async with (
        raw_ws_server(upstream) as port,
        stack_factory(resolve=lambda: Upstream(port=port), config=config) as stack,
        connect(stack.ws_url + "/") as ws,
    ):
        assert (await closed_code(ws))[0] == 1009
    assert isinstance(received[0], CloseConnection)
    assert received[0].code == 1009


async def test_messages_held_in_reassembly_share_one_budget(stack_factory, raw_ws_server):
    budget = Budget(1500)
    first_holding = anyio.Event()

    async def upstream(conn):
        target = conn.request.target
        if target == "/second":
            await first_holding.wait()
        await conn.send(BytesMessage(data=b"x" * 1000, message_finished=False))
        if target == "/first":
            first_holding.set()
        await conn.next_event()

    config = ProxyConfig(ws_max_message_bytes=10_000)
    async with (
        raw_ws_server(upstream) as port,
        stack_factory(resolve=lambda: Upstream(port=port), config=config, budget=budget) as stack,
    ):
        async with connect(stack.ws_url + "/first") as first, connect(stack.ws_url + "/second") as second:
            assert (await closed_code(second))[0] == 1009
            assert budget.held == 1000
            await first.close()
        await wait_until(lambda: budget.held == 0)


async def test_a_partial_message_that_stops_growing_is_closed_with_1008(stack_factory, raw_ws_server):
    received = []

    async def upstream(conn):
        await conn.send(TextMessage(data="part", message_finished=False))
        received.append(await conn.next_event())

    config = ProxyConfig(ws_message_stall_timeout=0.3)
    async with (
        raw_ws_server(upstream) as port,
        stack_factory(resolve=lambda: Upstream(port=port), config=config) as stack,
        connect(stack.ws_url + "/") as ws,
    ):
        started = anyio.current_time()
        assert (await closed_code(ws))[0] == 1008
        assert anyio.current_time() - started < 3
    assert received[0].code == 1008


async def test_a_session_holding_a_partial_message_gives_its_memory_back_when_it_ends(
    stack_factory, raw_ws_server, gc_off
):
    size = 8 * 1024 * 1024
    holding = anyio.Event()

    async def upstream(conn):
        await conn.send(BytesMessage(data=bytes(size), message_finished=False))
        holding.set()
        await conn.next_event()

    async with raw_ws_server(upstream) as port, stack_factory(resolve=lambda: Upstream(port=port)) as stack:
        tracemalloc.start()
        try:
            async with connect(stack.ws_url + "/") as ws:
                with anyio.fail_after(5):
                    await holding.wait()
                await wait_until(lambda: tracemalloc.get_traced_memory()[0] >= size)
                await ws.close()
            await anyio.sleep(0.3)
            held_after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert held_after < size // 4, f"{held_after} bytes still held after the session ended"
