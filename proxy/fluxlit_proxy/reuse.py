"""When an upstream connection may go back to the pool, be handed out again, or carry a retried request."""

from __future__ import annotations

from collections.abc import Sequence

import h11

from .asgi import Header
from .failures import Failure

# RFC 9110 9.2.2: repeating these has the same effect as sending them once.
IDEMPOTENT_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def may_reuse(
    *,
    request_state: object,
    response_state: object,
    request_written: bool,
    request_ended_first: bool,
    bytes_past_response: bool,
) -> bool:
    """Whether another request may follow on this connection (RFC 9112 9.3).

    Both messages must have ended cleanly with neither side asking to close (h11's states), and more:
    h11 counts an event as sent once it has framed it, so only `request_written` (the write holding the end
    of the request returned) says its last bytes reached the stream; a request that ended only after its
    response did was answered early, and a server that answered early may close rather than read the rest
    (RFC 9112 9.3; hypercorn does); and bytes after the response were never asked for. In each case the next
    request could be read as the tail of this one, or be answered by bytes meant for something else.
    """
    return (
        request_state is h11.DONE
        and response_state is h11.DONE
        and request_written
        and request_ended_first
        and not bytes_past_response
    )


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


def may_hand_out(*, same_upstream: bool, idle_for: float, idle_timeout: float, peer_closed_or_spoke: bool) -> bool:
    """An idle pooled connection may carry the next request when it goes to the upstream asked for, has idled
    for less than `idle_timeout` (kept below the upstream's own keep-alive, so the upstream does not close it as
    the request goes out), and the upstream has neither closed it nor written to it unasked since (a peek for
    EOF, as urllib3's is_connection_dropped does). A request none of whose bytes were sent can always go on
    another connection instead, so anything in doubt is closed here rather than risked."""
    return same_upstream and idle_for < idle_timeout and not peer_closed_or_spoke


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
    idempotent request whose body we have not consumed can be sent again unchanged: once bytes were sent,
    the upstream may have acted on them. (Connections the upstream closed while idle are caught before any
    byte is sent, by `may_hand_out`; this covers a close that crosses the request on the wire.)
    """
    return (
        attempt == 0
        and connection_reused
        and failure is Failure.RESET
        and response_bytes_seen == 0
        and not body_consumed
        and method.upper() in IDEMPOTENT_METHODS
    )
