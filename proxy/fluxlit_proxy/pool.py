"""A bounded set of idle keep-alive upstream connections, handed out most recently used first."""

from __future__ import annotations

import time

from .config import ProxyConfig, Upstream
from .connection import UpstreamConnection
from .hooks import ProxyHooks
from .reuse import is_expired, may_hand_out
from .transport import open_stream


class ConnectionPool:
    """Idle connections expire lazily (checked on every acquire): no background task. Idle times are on
    time.monotonic(), which costs no syscall, unlike anyio.current_time().

    Most recently used first, because the freshest connection is the least likely to have been closed by
    the upstream's own keep-alive timeout; each is looked at before it is handed out (`may_hand_out`), so a
    request never goes out on a connection the upstream already closed.
    """

    def __init__(self, config: ProxyConfig, hooks: ProxyHooks) -> None:
        self._config = config
        self._hooks = hooks
        self._idle: list[UpstreamConnection] = []
        self._in_use = 0

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    @property
    def in_use_count(self) -> int:
        return self._in_use

    async def acquire(self, upstream: Upstream, *, fresh: bool = False) -> UpstreamConnection:
        """An idle connection to `upstream` that may carry a request, or a new one (always new when `fresh`)."""
        conn = None
        if not fresh and self._idle:
            conn = await self._take_idle(upstream)
        if conn is None:
            conn = UpstreamConnection(await open_stream(upstream, self._config.connect_timeout), upstream)
        self._in_use += 1
        self._notify()
        return conn

    async def release(self, conn: UpstreamConnection) -> None:
        """Back to the pool if the connection can carry another request (`may_reuse`), else closed."""
        self._in_use -= 1
        if self._config.pool_max_connections > 0 and conn.may_carry_another_request:
            conn.start_next_cycle()
            self._idle.append(conn)
            if len(self._idle) > self._config.pool_max_connections:
                await self._idle.pop(0).aclose()
        else:
            await conn.aclose()
        self._notify()

    async def discard(self, conn: UpstreamConnection) -> None:
        self._in_use -= 1
        await conn.aclose()
        self._notify()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.aclose()
        self._notify()

    async def _take_idle(self, upstream: Upstream) -> UpstreamConnection | None:
        """The most recently used idle connection that may go to `upstream` now; those met on the way that may
        not (expired, closed or written to by the upstream, to a previous upstream: a restarted child on a new
        port) are closed, and so are the expired ones at the old end of the list."""
        now, timeout = time.monotonic(), self._config.pool_idle_timeout
        # Appended on release, so the oldest idle connections come first (roughly: idle time counts from the
        # end of each response, not from its release); expired ones there would otherwise wait for a hand-out.
        while self._idle and is_expired(self._idle[0].idle_since, now, timeout):
            await self._idle.pop(0).aclose()
        while self._idle:
            conn = self._idle.pop()
            if may_hand_out(
                same_upstream=conn.upstream == upstream,
                idle_for=now - conn.idle_since,
                idle_timeout=timeout,
                peer_closed_or_spoke=conn.peer_closed_or_spoke(),
            ):
                return conn
            await conn.aclose()
        return None

    def _notify(self) -> None:
        self._hooks.pool_changed(len(self._idle), self._in_use)
