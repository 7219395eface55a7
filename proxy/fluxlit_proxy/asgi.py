"""The ASGI 3 shapes the proxy speaks: scope, messages, receive and send callables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Header = tuple[bytes, bytes]
Headers = list[Header]


def scope_headers(scope: Scope) -> Headers:
    """The scope's headers as a list of byte pairs (servers may hand over lists or tuples)."""
    raw: Iterable[Iterable[bytes]] = scope.get("headers") or []
    return [(bytes(name), bytes(value)) for name, value in raw]


def request_id_of(headers: Headers) -> str:
    for name, value in headers:
        if name.lower() == b"x-request-id":
            return value.decode("latin-1")
    return "-"
