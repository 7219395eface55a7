"""One h11 client connection to the upstream: bytes out, events in, failures named."""

from __future__ import annotations

import anyio
import anyio.abc
import h11

from .config import Upstream
from .failures import Failure, UpstreamError

# Large reads mean fewer events per body; asyncio itself reads at most 256 KiB per wakeup.
RECEIVE_SIZE = 256 * 1024
# Response heads larger than this are refused as malformed (h11's default is 16 KiB).
MAX_HEAD_BYTES = 64 * 1024
# The socket errors that mean the peer is gone, as anyio and the OS report them.
STREAM_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class UpstreamConnection:
    """An h11 client state machine bound to one stream; deadlines are the caller's business."""

    def __init__(self, stream: anyio.abc.ByteStream, upstream: Upstream) -> None:
        self.stream = stream
        self.upstream = upstream
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.exchanges = 0
        self.idle_since = 0.0
        self.bytes_received = 0
        self._eof = False

    @property
    def reused(self) -> bool:
        return self.exchanges > 0

    async def send(self, event: h11.Event, write_timeout: float) -> None:
        data = self.h11.send(event)
        if not data:
            return
        try:
            with anyio.fail_after(write_timeout):
                await self.stream.send(data)
        except TimeoutError:
            raise UpstreamError(Failure.WRITE_TIMEOUT, f"write blocked for {write_timeout:g}s") from None
        except STREAM_GONE as exc:
            raise UpstreamError(Failure.RESET, f"while sending: {exc!r}") from None

    async def next_event(self) -> h11.Event:
        """The next complete h11 event; a peer that closes early is RESET, garbage is PROTOCOL."""
        while True:
            event = self.buffered_event()
            if event is not None:
                return event
            try:
                data = await self.stream.receive(RECEIVE_SIZE)
            except anyio.EndOfStream:
                data = b""
            except STREAM_GONE as exc:
                raise UpstreamError(Failure.RESET, f"while receiving: {exc!r}") from None
            self._eof = not data
            self.bytes_received += len(data)
            self.h11.receive_data(data)

    def buffered_event(self) -> h11.Event | None:
        """The next event if what was already received completes it, else None; never waits."""
        try:
            event = self.h11.next_event()
        except h11.RemoteProtocolError as exc:
            failure = Failure.RESET if self._eof else Failure.PROTOCOL
            raise UpstreamError(failure, str(exc)) from None
        if isinstance(event, h11.Event):
            return event
        if event is h11.PAUSED:
            # Only reachable if the upstream talks past the end of its response.
            raise UpstreamError(Failure.PROTOCOL, "data after the end of the response")
        return None

    def start_next_cycle(self, now: float) -> None:
        self.h11.start_next_cycle()
        self.exchanges += 1
        self.bytes_received = 0
        self.idle_since = now

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self.stream)
