"""Callbacks the proxy makes so its owner can count what happens (metrics), with no-op defaults."""

from __future__ import annotations


class ProxyHooks:
    """Subclass and override what you need; every method must return quickly and never raise."""

    def upstream_error(self, kind: str) -> None:
        """An upstream exchange failed; kind is one of "connect", "timeout", "reset", "protocol"."""

    def pool_changed(self, idle: int, in_use: int) -> None:
        """The number of idle or in-use upstream HTTP connections changed."""

    def websocket_opened(self) -> None:
        """A client WebSocket was accepted and bridged to the upstream."""

    def websocket_message(self, direction: str, size: int) -> None:
        """A whole message crossed; direction is "upstream" (client to upstream) or "downstream"."""

    def websocket_closed(self, code: int, duration_s: float) -> None:
        """A bridged WebSocket ended; code is the one the client leg saw."""
