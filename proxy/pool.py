"""A bounded set of idle keep-alive upstream connections, handed out most recently used first."""

from __future__ import annotations

import time

from .config import ProxyConfig, Upstream
from .connection import UpstreamConnection
from .hooks import ProxyHooks
from .reuse import is_expired
from .transport import open_stream


class ConnectionPool:
    """Idle connections expire lazily (checked on every acquire and release): no background task.
    Idle times are on time.monotonic(), which costs no syscall, unlike anyio.current_time().

    Most recently used first, because the freshest connection is the least likely to have been
    closed by the upstream's own keep-alive timeout.
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
        """An idle connection to `upstream`, or a new one (always new when `fresh`)."""
        conn = None
        if not fresh and self._idle:
            await self._drop_unusable(upstream)
            if self._idle:
                conn = self._idle.pop()
        if conn is None:
            conn = UpstreamConnection(await open_stream(upstream, self._config.connect_timeout), upstream)
        self._in_use += 1
        self._notify()
        return conn

    async def release(self, conn: UpstreamConnection) -> None:
        """Back to the pool if h11 says the connection can carry another request, else closed."""
        self._in_use -= 1
        if self._config.pool_max_connections > 0 and conn.may_carry_another_request:
            conn.start_next_cycle(time.monotonic())
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

    async def _drop_unusable(self, upstream: Upstream) -> None:
        """Close the expired connections, and those to a previous upstream (a restarted child on a new port)."""
        # Appended on release, so idle_since ascends: the expired connections are a prefix.
        now, timeout = time.monotonic(), self._config.pool_idle_timeout
        stale = 0
        while stale < len(self._idle) and is_expired(self._idle[stale].idle_since, now, timeout):
            stale += 1
        drop, self._idle = self._idle[:stale], self._idle[stale:]
        # Checked before every hand-out from the end, so the connection handed out is always to `upstream`.
        if self._idle and self._idle[-1].upstream != upstream:
            drop += [conn for conn in self._idle if conn.upstream != upstream]
            self._idle = [conn for conn in self._idle if conn.upstream == upstream]
        for conn in drop:
            await conn.aclose()

    def _notify(self) -> None:
        self._hooks.pool_changed(len(self._idle), self._in_use)
