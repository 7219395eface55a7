"""One idle connection to the upstream, opened ahead of time, so that a WebSocket handshake skips the TCP connect.

The connection a WebSocket takes is gone for good (it becomes the WebSocket), so after each successful
handshake the next spare is opened in the background. A spare is used only while it is young, still goes to
the current upstream, and the upstream has not closed it (checked without reading from it); the handshake
retries once on a fresh connection if the upstream closes it at the last moment anyway.
"""

from __future__ import annotations

import logging
import time

import anyio
import anyio.abc

from .config import ProxyConfig, Upstream
from .failures import UpstreamError
from .transport import open_stream, readable_or_closed

log = logging.getLogger("proxy")


def spare_usable(*, same_upstream: bool, age: float, max_age: float, readable_or_closed: bool) -> bool:
    """A spare may carry a handshake when it goes to the upstream asked for, has not idled past `max_age`,
    and has nothing to read: an upstream that closed it (or wrote to it unasked) makes it readable."""
    return same_upstream and age < max_age and not readable_or_closed


class SpareConnection:
    """At most one idle, already connected stream; `max_age` bounds its idling (the pool's idle timeout)."""

    def __init__(self, config: ProxyConfig) -> None:
        self._config = config
        self._spare: tuple[Upstream, anyio.abc.ByteStream, float] | None = None
        self._opening = False
        self._closed = False

    @property
    def ready(self) -> bool:
        return self._spare is not None

    async def take(self, upstream: Upstream) -> anyio.abc.ByteStream | None:
        """The spare, if it is usable for `upstream` (it is closed otherwise); None means connect."""
        if self._spare is None:
            return None
        (held_for, stream, since), self._spare = self._spare, None
        if spare_usable(
            same_upstream=held_for == upstream,
            age=time.monotonic() - since,
            max_age=self._config.pool_idle_timeout,
            readable_or_closed=readable_or_closed(stream),
        ):
            return stream
        await anyio.aclose_forcefully(stream)
        return None

    async def refill(self, upstream: Upstream) -> None:
        """Open the next spare unless one is ready or opening; a failure only means there is none for now."""
        if self._spare is not None or self._opening or self._closed:
            return
        self._opening = True
        try:
            stream = await open_stream(upstream, self._config.connect_timeout)
        except UpstreamError as exc:
            log.debug("no spare upstream connection: %s", exc, extra={"error": str(exc)})
            return
        finally:
            self._opening = False
        if self._closed:  # the proxy closed while this connect was under way
            await anyio.aclose_forcefully(stream)
            return
        self._spare = (upstream, stream, time.monotonic())

    async def aclose(self) -> None:
        """Close the spare; no new one is opened afterwards."""
        self._closed = True
        if self._spare is not None:
            (_, stream, _), self._spare = self._spare, None
            await anyio.aclose_forcefully(stream)
