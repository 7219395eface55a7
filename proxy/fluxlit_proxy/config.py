"""Where the upstream is, whether it can be reached now, and the limits the proxy works within."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Upstream:
    """One reachable upstream: TCP host/port, or a unix socket when `unix_path` is set."""

    host: str = "127.0.0.1"
    port: int | None = None
    unix_path: str | None = None
    path_prefix: str = ""

    def __post_init__(self) -> None:
        if self.unix_path is None and self.port is None:
            raise ValueError(f"Upstream(host={self.host!r}) needs a port or a unix_path: set one of them")
        if self.path_prefix and (not self.path_prefix.startswith("/") or self.path_prefix.endswith("/")):
            raise ValueError(
                f"Upstream path_prefix={self.path_prefix!r} must start with '/' and not end with '/': "
                f"try {'/' + self.path_prefix.strip('/')!r}"
            )
        try:
            self.path_prefix.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"Upstream path_prefix={self.path_prefix!r} must be ASCII: percent-encode it") from None


@dataclass(frozen=True)
class Unavailable:
    """The upstream cannot take requests right now; `reason` is shown to the client and logged."""

    reason: str
    retry_after_seconds: int = 2
    restarting: bool = False


# Called per request/connection, so it must be cheap: read an in-memory snapshot, never a file.
UpstreamResolver = Callable[[], Upstream | Unavailable]


@dataclass(frozen=True)
class ProxyConfig:
    """Timeouts and limits, in seconds and bytes."""

    connect_timeout: float = 5.0
    read_timeout: float = 300.0
    write_timeout: float = 60.0
    max_request_body_bytes: int | None = None
    pool_max_connections: int = 64
    # Below the upstream's own keep-alive (uvicorn, hypercorn, Node: 5 s), so the upstream never closes a pooled
    # connection just as a request goes out on it; connections it closed sooner are caught before reuse.
    pool_idle_timeout: float = 4.0
    ws_max_message_bytes: int = 256 * 1024 * 1024
    ws_keepalive_interval: float | None = 20.0
    ws_open_timeout: float = 30.0
    # A message the upstream started but stopped growing is closed with 1008 after this long (None: never).
    ws_message_stall_timeout: float | None = 60.0
    # Keep one connection to the upstream open ahead of time for the next WebSocket handshake.
    ws_spare_connection: bool = True

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "write_timeout", "ws_open_timeout", "pool_idle_timeout"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"ProxyConfig.{name}={value!r} must be a positive number of seconds")
        if self.ws_keepalive_interval is not None and not self.ws_keepalive_interval > 0:
            raise ValueError(
                f"ProxyConfig.ws_keepalive_interval={self.ws_keepalive_interval!r} must be positive: "
                "use None to disable keepalive pings"
            )
        if self.ws_message_stall_timeout is not None and not self.ws_message_stall_timeout > 0:
            raise ValueError(
                f"ProxyConfig.ws_message_stall_timeout={self.ws_message_stall_timeout!r} must be positive: "
                "use None to let partial messages wait forever"
            )
        if self.pool_max_connections < 0:
            raise ValueError(
                f"ProxyConfig.pool_max_connections={self.pool_max_connections!r} must be >= 0 "
                "(0 disables keep-alive reuse)"
            )
        if self.max_request_body_bytes is not None and self.max_request_body_bytes < 0:
            raise ValueError(
                f"ProxyConfig.max_request_body_bytes={self.max_request_body_bytes!r} must be >= 0, or None for no limit"
            )
        if self.ws_max_message_bytes <= 0:
            raise ValueError(f"ProxyConfig.ws_max_message_bytes={self.ws_max_message_bytes!r} must be > 0")
