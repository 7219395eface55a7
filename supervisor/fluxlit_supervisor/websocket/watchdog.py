"""When a client WebSocket is pinged, given up on, or closed for a stalled message: pure decisions over a clock.

Each accepted WebSocket has one watchdog task (run by `hypercorn_fixes.py`) that lives exactly as long
as the stream. It asks `next_action` what to do now; the stream records what it saw in `StreamWatch` (any
bytes from the client answer a ping: a pong, or anything else, proves the peer and the path alive).
"""

from __future__ import annotations

from dataclasses import dataclass

from fluxlit_supervisor.websocket.memory_budget import MemoryBudget

INTERNAL_ERROR = 1011  # RFC 6455 7.4.1; what browsers and uvicorn use for an unanswered ping
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009


@dataclass(frozen=True)
class WebSocketLimits:
    """How the server keeps each client WebSocket alive and bounded; seconds and bytes, None turns a rule off.

    `ping_interval`: ping the client this often (keeps load balancers from cutting idle connections);
    `ping_timeout`: close with 1011 when nothing came back this long after a ping; `stall_timeout`: close with
    1008 when a partial message held in reassembly stops growing; `close_grace`: after such a close, how long
    the client may take before the connection is dropped; `budget`: bytes held in reassembly across every
    connection (1009 when spent), on top of hypercorn's per-message `websocket_max_message_size`.
    """

    ping_interval: float | None = None
    ping_timeout: float = 20.0
    stall_timeout: float | None = 60.0
    close_grace: float = 1.0
    budget: MemoryBudget | None = None

    def __post_init__(self) -> None:
        for name in ("ping_interval", "stall_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"WebSocketLimits.{name}={value!r} must be positive seconds, or None to turn it off")
        if not self.ping_timeout > 0:
            raise ValueError(f"WebSocketLimits.ping_timeout={self.ping_timeout!r} must be positive seconds")
        if not self.close_grace >= 0:
            raise ValueError(f"WebSocketLimits.close_grace={self.close_grace!r} must be >= 0 seconds")


@dataclass
class StreamWatch:
    """What one stream's watchdog knows, in event-loop seconds: written by the stream, read by `next_action`."""

    opened_at: float
    last_inbound: float
    ping_sent_at: float | None = None
    progress_at: float | None = None  # while a partial message is held: when it last grew
    closing_since: float | None = None  # a close frame went out; the connection ends after close_grace

    @property
    def ping_outstanding(self) -> bool:
        return self.ping_sent_at is not None and self.last_inbound < self.ping_sent_at


@dataclass(frozen=True)
class SendPing:
    pass


@dataclass(frozen=True)
class SendClose:
    """Send a close frame; `linger` waits close_grace for the client's answer, otherwise the connection ends."""

    code: int
    reason: str
    linger: bool = True


@dataclass(frozen=True)
class EndStream:
    """Drop the connection: the close grace is over."""


@dataclass(frozen=True)
class WaitUntil:
    """Nothing to do before `at` (None: until the stream reports something)."""

    at: float | None


Action = SendPing | SendClose | EndStream | WaitUntil


def next_action(limits: WebSocketLimits, watch: StreamWatch, now: float) -> Action:
    """What the watchdog does at `now`; when nothing is due, the earliest time something will be."""
    if watch.closing_since is not None:
        end = watch.closing_since + limits.close_grace
        return EndStream() if now >= end else WaitUntil(end)
    due: list[float] = []
    if watch.ping_outstanding:
        assert watch.ping_sent_at is not None
        deadline = watch.ping_sent_at + limits.ping_timeout
        if now >= deadline:
            # A client that cannot answer a ping will not answer a close either: fail the connection (7.1.7).
            return SendClose(INTERNAL_ERROR, f"no answer to a ping within {limits.ping_timeout:g}s", linger=False)
        due.append(deadline)
    elif limits.ping_interval is not None:
        next_ping = (watch.ping_sent_at if watch.ping_sent_at is not None else watch.opened_at) + limits.ping_interval
        if now >= next_ping:
            return SendPing()
        due.append(next_ping)
    if limits.stall_timeout is not None and watch.progress_at is not None:
        deadline = watch.progress_at + limits.stall_timeout
        if now >= deadline:
            return SendClose(POLICY_VIOLATION, f"message made no progress for {limits.stall_timeout:g}s")
        due.append(deadline)
    return WaitUntil(min(due) if due else None)
