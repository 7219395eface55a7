"""Serving an ASGI app with hypercorn on sockets we bind ourselves, with cancellable in-flight requests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from hypercorn.config import Config, Sockets

from fluxlit_supervisor.hypercorn_fixes import (
    SupervisedConfig,
    guard_websockets,
    release_closed_connections,
)
from fluxlit_supervisor.websocket.watchdog import WebSocketLimits

logger = logging.getLogger("supervisor")

# How long after our drain deadline hypercorn's own drain timer may expire (see build_hypercorn_config).
HYPERCORN_DRAIN_MARGIN = 1.0

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class ServeConfig:
    """Where and how the public server listens, how long a graceful stop may drain, and how client WebSockets
    are kept alive and bounded (None: as hypercorn does it)."""

    binds: Sequence[str] = ("127.0.0.1:8000",)
    certfile: str | None = None
    keyfile: str | None = None
    graceful_timeout: float = 10.0
    hypercorn_options: Mapping[str, Any] = field(default_factory=dict)
    websocket: WebSocketLimits | None = None

    def __post_init__(self) -> None:
        if isinstance(self.binds, str):
            raise ValueError(f"ServeConfig.binds={self.binds!r} must be a sequence: try ({self.binds!r},)")
        if not self.binds:
            raise ValueError("ServeConfig.binds is empty: give at least one 'host:port' or 'unix:/path'")
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("ServeConfig needs both certfile and keyfile for TLS, or neither")
        if not self.graceful_timeout >= 0:
            raise ValueError(f"ServeConfig.graceful_timeout={self.graceful_timeout!r} must be >= 0 seconds")
        if self.websocket is not None and self.hypercorn_options.get("websocket_ping_interval") is not None:
            raise ValueError(
                "ServeConfig sets both websocket limits and hypercorn_options['websocket_ping_interval']: "
                "ping through WebSocketLimits.ping_interval only (hypercorn's ping loop outlives its WebSocket)"
            )


class BindError(Exception):
    """A public bind failed; names the bind and the OS reason."""

    def __init__(self, bind: str, error: OSError) -> None:
        super().__init__(f"cannot bind {bind}: {error.strerror or error}")
        self.bind = bind
        self.error = error


def build_hypercorn_config(serve: ServeConfig) -> Config:
    """One hypercorn Config for the run: our binds and TLS, access log off, errors to stdlib logging."""
    release_closed_connections()  # every server built from this config frees a client-closed socket at once
    config = SupervisedConfig()
    if serve.websocket is not None and guard_websockets():
        config.websocket_limits = serve.websocket
    config.bind = list(serve.binds)
    config.certfile = serve.certfile
    config.keyfile = serve.keyfile
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    # We own the drain deadline (hypercorn's is reported ignored on Python 3.12+,
    # https://github.com/pgjones/hypercorn/issues/308): the stop (shutdown.py) cancels
    # what still runs when it passes. hypercorn's own timer starts only at its shutdown trigger, after the
    # stop's before_stop, so set once here it always expires after ours: a backstop, never the deadline.
    config.graceful_timeout = serve.graceful_timeout + HYPERCORN_DRAIN_MARGIN
    for name, value in serve.hypercorn_options.items():
        if name.startswith("_") or not hasattr(config, name):
            raise ValueError(f"hypercorn_options[{name!r}] is not a hypercorn Config attribute")
        setattr(config, name, value)
    if config.quic_bind:
        raise ValueError("hypercorn_options['quic_bind'] is not supported by the supervisor's server")
    return config


def parse_tcp_bind(bind: str) -> tuple[str, int]:
    """Split 'host:port' or '[v6]:port' the way hypercorn does (a missing port means 8000)."""
    plain = bind.replace("[", "").replace("]", "")
    host, _, port = plain.rpartition(":")
    if not host or not port.isdigit():
        return plain, 8000
    return host, int(port)


def bind_sockets(config: Config) -> Sockets:
    """Bind every public socket now (before the child starts), closing the ones made if any bind fails.

    Mirrors hypercorn's Config.create_sockets, which leaks the socket whose bind fails.
    """
    secure: list[socket.socket] = []
    insecure: list[socket.socket] = []
    plan = [(bind, secure if config.ssl_enabled else insecure) for bind in config.bind]
    if config.ssl_enabled:
        plan += [(bind, insecure) for bind in config.insecure_bind]
    try:
        for bind, into in plan:
            try:
                into.append(_bind_one(bind, config))
            except OSError as exc:
                raise BindError(bind, exc) from exc
    except BaseException:
        for sock in secure + insecure:
            sock.close()
        raise
    return Sockets(secure_sockets=secure, insecure_sockets=insecure, quic_sockets=[])


def _bind_one(bind: str, config: Config) -> socket.socket:
    if bind.startswith("fd://"):
        sock = socket.socket(fileno=int(bind[5:]))
        if sock.type != socket.SOCK_STREAM:
            sock.detach()
            raise OSError(f"fd {bind[5:]} is not a stream socket")
    else:
        sock = socket.socket(socket.AF_UNIX) if bind.startswith("unix:") else _tcp_socket(bind)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if bind.startswith("unix:"):
                _bind_unix(sock, bind[5:], config)
            else:
                sock.bind(parse_tcp_bind(bind))
        except BaseException:
            sock.close()
            raise
    # Not inheritable: uvloop ignores close_fds, and a child holding the public listener could accept on it,
    # so connections arriving during a stop were reset instead of refused.
    sock.setblocking(False)
    return sock


def _tcp_socket(bind: str) -> socket.socket:
    host, _ = parse_tcp_bind(bind)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _bind_unix(sock: socket.socket, path: str, config: Config) -> None:
    # A socket file left by a previous run would make bind fail with EADDRINUSE.
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.remove(path)
    previous_umask = os.umask(config.umask) if config.umask is not None else None
    try:
        sock.bind(path)
    finally:
        if previous_umask is not None:
            os.umask(previous_umask)
    if config.user is not None and config.group is not None:
        os.chown(path, config.user, config.group)


def all_sockets(sockets: Sockets) -> list[socket.socket]:
    return [*sockets.secure_sockets, *sockets.insecure_sockets, *sockets.quic_sockets]


def is_listening(sockets: Sockets) -> bool:
    """True once every socket accepts connections (hypercorn listens only after lifespan startup)."""
    try:
        return all(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) for s in all_sockets(sockets))
    except OSError:
        return False


def close_sockets(sockets: Sockets, binds: Sequence[str]) -> None:
    """Close our sockets (idempotent) and remove the unix socket files we bound."""
    for sock in all_sockets(sockets):
        sock.close()
    for bind in binds:
        if bind.startswith("unix:"):
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.lstat(bind[5:]).st_mode):
                    os.unlink(bind[5:])


class InflightRequests:
    """An ASGI wrapper that knows the task of every running request, so a deadline can cancel them."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        if scope["type"] == "lifespan" or task is None:
            await self._app(scope, receive, send)
            return
        self._tasks.add(task)
        try:
            await self._app(scope, receive, send)
        finally:
            self._tasks.discard(task)

    @property
    def count(self) -> int:
        return len(self._tasks)

    def cancel_all(self) -> int:
        """Cancel every running request; hypercorn then answers or closes each connection."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        return len(tasks)
