"""A bounded set of idle keep-alive upstream connections, handed out most recently used first."""

from __future__ import annotations

import anyio

from .config import ProxyConfig, Upstream
from .connection import UpstreamConnection
from .hooks import ProxyHooks
from .reuse import is_expired, may_reuse
from .transport import open_stream


class ConnectionPool:
    """Idle connections expire lazily (checked on every acquire and release): no background task.

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
        if not fresh:
            await self._drop_unusable(upstream)
            for index in range(len(self._idle) - 1, -1, -1):
                if self._idle[index].upstream == upstream:
                    conn = self._idle.pop(index)
                    break
        if conn is None:
            conn = UpstreamConnection(await open_stream(upstream, self._config.connect_timeout), upstream)
        self._in_use += 1
        self._notify()
        return conn

    async def release(self, conn: UpstreamConnection) -> None:
        """Back to the pool if h11 says the connection can carry another request, else closed."""
        self._in_use -= 1
        if self._config.pool_max_connections > 0 and may_reuse(conn.h11.our_state, conn.h11.their_state):
            conn.start_next_cycle(anyio.current_time())
            self._idle.append(conn)
            while len(self._idle) > self._config.pool_max_connections:
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
        # Connections to a previous upstream (a restarted child on a new port) are never useful again.
        now = anyio.current_time()
        keep: list[UpstreamConnection] = []
        drop: list[UpstreamConnection] = []
        for conn in self._idle:
            usable = conn.upstream == upstream and not is_expired(conn.idle_since, now, self._config.pool_idle_timeout)
            (keep if usable else drop).append(conn)
        if drop:
            self._idle = keep
            for conn in drop:
                await conn.aclose()

    def _notify(self) -> None:
        self._hooks.pool_changed(len(self._idle), self._in_use)
