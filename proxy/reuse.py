"""When an upstream connection may go back to the pool, expire there, or carry a retried request."""

from __future__ import annotations

from collections.abc import Sequence

import h11

from .asgi import Header
from .failures import Failure

# RFC 9110 9.2.2: repeating these has the same effect as sending them once.
IDEMPOTENT_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def may_reuse(our_state: object, their_state: object) -> bool:
    """h11 says both messages ended cleanly and neither side asked to close."""
    return our_state is h11.DONE and their_state is h11.DONE


def keeps_alive(http_version: bytes, headers: Sequence[Header]) -> bool:
    """RFC 9112 9.3, as h11 judges it: an HTTP/1.1 response without "Connection: close" leaves the
    connection open. (The request never asks to close: the client's Connection header is not forwarded.)"""
    if http_version < b"1.1":
        return False
    for name, value in headers:
        if name.lower() == b"connection" and any(token.strip().lower() == b"close" for token in value.split(b",")):
            return False
    return True


def is_expired(idle_since: float, now: float, idle_timeout: float) -> bool:
    return now - idle_since >= idle_timeout


def may_retry(
    *,
    method: str,
    connection_reused: bool,
    body_consumed: bool,
    response_bytes_seen: int,
    failure: Failure,
    attempt: int,
) -> bool:
    """Retry once on a fresh connection when a kept-alive one turns out to have been closed under us.

    Only then can the failure be the stale-connection race rather than the request itself; and only an
    idempotent request whose body we have not consumed can be sent again unchanged.
    """
    return (
        attempt == 0
        and connection_reused
        and failure is Failure.RESET
        and response_bytes_seen == 0
        and not body_consumed
        and method.upper() in IDEMPOTENT_METHODS
    )
