"""One h11 client connection to the upstream: bytes out, events in, failures named."""

from __future__ import annotations

import time

import anyio
import anyio.abc
import h11

from .config import Upstream
from .failures import Failure, UpstreamError
from .reuse import may_reuse
from .transport import ClosePeek

# Large reads mean fewer events per body; asyncio and uvloop themselves read at most 256 KiB per wakeup.
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
        # True once the write holding the end of the request returned: h11 counts the end as sent when it
        # frames it, before a cancelled write may drop it ("0\r\n\r\n" of a chunked body).
        self.request_written = False
        self.peer_closed_or_spoke = ClosePeek(stream)
        self._eof = False
        # False once h11 said it needs more data, until more is fed: asking again would only cost.
        self._unparsed = False
        # Set once a body was read past h11 (see `end_body_read_past_h11`): (keeps alive, bytes past the
        # body), what h11 would have judged had it read the body.
        self._bypass: tuple[bool, bool] | None = None
        # Set when the response ended: whether the request had been written in full by then, and when.
        self._request_ended_first = False
        self._response_ended_at = 0.0

    @property
    def reused(self) -> bool:
        return self.exchanges > 0

    async def send(self, event: h11.Event, *, write_timeout: float) -> None:
        try:
            with anyio.fail_after(write_timeout):
                await self.send_unguarded(event)
        except TimeoutError:
            raise UpstreamError(Failure.WRITE_TIMEOUT, f"write blocked for {write_timeout:g}s") from None

    async def send_unguarded(self, *events: h11.Event) -> None:
        """Send `events` in one write, with the caller's deadline (a bodiless request's head and end
        go out together)."""
        data = b"".join([self.h11.send(event) or b"" for event in events])
        if data:
            try:
                await self.stream.send(data)
            except STREAM_GONE as exc:
                raise UpstreamError(Failure.RESET, f"while sending: {exc!r}") from None
        if self.h11.our_state is h11.DONE:
            self.request_written = True

    async def receive(self) -> bytes:
        """The next bytes straight off the stream; b"" at end of stream."""
        try:
            data = await self.stream.receive(RECEIVE_SIZE)
        except anyio.EndOfStream:
            data = b""
        except STREAM_GONE as exc:
            raise UpstreamError(Failure.RESET, f"while receiving: {exc!r}") from None
        self.bytes_received += len(data)
        return data

    async def next_event(self) -> h11.Event:
        """The next complete h11 event; a peer that closes early is RESET, garbage is PROTOCOL."""
        while True:
            if self._unparsed:
                event = self.buffered_event()
                if event is not None:
                    return event
            data = await self.receive()
            self._eof = not data
            self.h11.receive_data(data)
            self._unparsed = True

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
        self._unparsed = False
        return None

    def take_buffered_bytes(self) -> bytes:
        """What h11 has received past the response head, for a body read past h11."""
        return self.h11.trailing_data[0]

    def end_body_read_past_h11(self, *, keeps_alive: bool, bytes_past_body: bool) -> None:
        """The whole Content-Length body was read straight off the stream, without h11's two copies of
        every chunk; h11, still waiting for that body, is replaced by a fresh state machine if reused."""
        self._bypass = (keeps_alive, bytes_past_body)

    def response_ended(self) -> None:
        """The last byte of the response arrived: note whether the request had ended first, and start the idle
        clock, as the upstream starts its keep-alive timer when it has sent the response, not when our client
        has read it."""
        self._request_ended_first = self.request_written
        self._response_ended_at = time.monotonic()

    @property
    def may_carry_another_request(self) -> bool:
        if self._bypass is not None:
            keeps_alive, bytes_past = self._bypass
            response_state: object = h11.DONE if keeps_alive else h11.MUST_CLOSE
        else:
            response_state, bytes_past = self.h11.their_state, bool(self.h11.trailing_data[0])
        return may_reuse(
            request_state=self.h11.our_state,
            response_state=response_state,
            request_written=self.request_written,
            request_ended_first=self._request_ended_first,
            bytes_past_response=bytes_past,
        )

    def start_next_cycle(self) -> None:
        if self._bypass is not None:
            self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
            self._bypass = None
        else:
            self.h11.start_next_cycle()
        self._unparsed = False  # nothing came after the response, or the connection would not be reused
        self.exchanges += 1
        self.bytes_received = 0
        self.request_written = False
        self._request_ended_first = False
        self.idle_since = self._response_ended_at

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self.stream)
