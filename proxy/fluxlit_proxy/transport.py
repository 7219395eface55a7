"""Byte streams to the upstream: opened over TCP or a unix socket within the connect deadline, peeked at idle."""

from __future__ import annotations

import select

import anyio
import anyio.abc

from .config import Upstream
from .failures import Failure, UpstreamError


def describe(upstream: Upstream) -> str:
    if upstream.unix_path is not None:
        return f"unix:{upstream.unix_path}"
    return f"{upstream.host}:{upstream.port}"


async def open_stream(upstream: Upstream, connect_timeout: float) -> anyio.abc.ByteStream:
    """Connect, or raise UpstreamError(CONNECT_REFUSED | CONNECT_TIMEOUT)."""
    try:
        with anyio.fail_after(connect_timeout):
            if upstream.unix_path is not None:
                return await anyio.connect_unix(upstream.unix_path)
            assert upstream.port is not None  # Upstream.__post_init__ guarantees a port or a unix path
            return await anyio.connect_tcp(upstream.host, upstream.port)
    # TimeoutError is an OSError too, so it must be told apart first.
    except TimeoutError:
        raise UpstreamError(Failure.CONNECT_TIMEOUT, f"{describe(upstream)} after {connect_timeout:g}s") from None
    except OSError as exc:
        raise UpstreamError(Failure.CONNECT_REFUSED, f"{describe(upstream)}: {exc.strerror or exc}") from None


# What poll() reports for a peer that closed (FIN: readable and, on Linux, RDHUP; RST: error/hang-up) or wrote.
POLL_GONE = select.POLLIN | select.POLLERR | select.POLLHUP | getattr(select, "POLLRDHUP", 0)


class ClosePeek:
    """Looks at an idle stream's socket without reading from it: readable means the peer closed it or wrote
    to it unasked. Nothing is read, so anyio's buffers are untouched (it stops reading between receives)."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        self._poller: select.poll | None = None

    def __call__(self) -> bool:
        fileno = self._socket.fileno()
        if fileno < 0:  # closed on our side (asyncio and uvloop report -1 then)
            return True
        if self._poller is None:
            # Registered once per connection: a reused poll object halves the cost of each look (~3 us).
            self._poller = select.poll()
            self._poller.register(fileno, POLL_GONE)
        return bool(self._poller.poll(0))


def readable_or_closed(stream: anyio.abc.ByteStream) -> bool:
    """Whether the peer closed the stream or sent something on it, looked at without reading."""
    return ClosePeek(stream)()
