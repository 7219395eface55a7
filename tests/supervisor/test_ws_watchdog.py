"""The WebSocket watchdog's decisions, as a table over a clock: when to ping, give up, or drop a stalled message."""

from __future__ import annotations

import pytest
from fluxlit_supervisor.websocket.watchdog import (
    EndStream,
    SendClose,
    SendPing,
    StreamWatch,
    WaitUntil,
    WebSocketLimits,
    next_action,
)

PINGS = WebSocketLimits(ping_interval=20, ping_timeout=10, stall_timeout=60, close_grace=1)


@pytest.mark.parametrize(
    ("limits", "watch", "now", "action"),
    [
        # the first ping is one interval after the accept
        (PINGS, StreamWatch(opened_at=0, last_inbound=0), 5, WaitUntil(20)),
        (PINGS, StreamWatch(opened_at=0, last_inbound=0), 20, SendPing()),
        # an outstanding ping waits for its answer until the timeout, then the connection fails with 1011
        (PINGS, StreamWatch(0, 0, ping_sent_at=20), 25, WaitUntil(30)),
        (PINGS, StreamWatch(0, 0, ping_sent_at=20), 30, SendClose(1011, "no answer to a ping within 10s", False)),
        # answered (any bytes after the ping): the next one is an interval after the last
        (PINGS, StreamWatch(0, last_inbound=21, ping_sent_at=20), 25, WaitUntil(40)),
        (PINGS, StreamWatch(0, last_inbound=21, ping_sent_at=20), 40, SendPing()),
        # a partial message that stopped growing
        (PINGS, StreamWatch(0, last_inbound=21, ping_sent_at=20, progress_at=15), 40, SendPing()),
        (PINGS, StreamWatch(0, last_inbound=61, ping_sent_at=60, progress_at=15), 70, WaitUntil(75)),
        (
            PINGS,
            StreamWatch(0, last_inbound=61, ping_sent_at=60, progress_at=15),
            75,
            SendClose(1008, "message made no progress for 60s"),
        ),
        # after a close frame: only the grace, then the end
        (PINGS, StreamWatch(0, 0, ping_sent_at=20, closing_since=22), 22.5, WaitUntil(23)),
        (PINGS, StreamWatch(0, 0, ping_sent_at=20, closing_since=22), 23, EndStream()),
        # pings off: nothing to wait for but a message in progress
        (WebSocketLimits(), StreamWatch(0, 0), 1000, WaitUntil(None)),
        (WebSocketLimits(), StreamWatch(0, 0, progress_at=990), 1000, WaitUntil(1050)),
        (WebSocketLimits(stall_timeout=None), StreamWatch(0, 0, progress_at=0), 1000, WaitUntil(None)),
    ],
)
def test_next_action(limits: WebSocketLimits, watch: StreamWatch, now: float, action: object) -> None:
    assert next_action(limits, watch, now) == action


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ping_interval": 0}, "ping_interval=0 must be positive seconds, or None"),
        ({"stall_timeout": -1}, "stall_timeout=-1 must be positive seconds, or None"),
        ({"ping_timeout": 0}, "ping_timeout=0 must be positive seconds"),
        ({"close_grace": -0.5}, "close_grace=-0.5 must be >= 0 seconds"),
    ],
)
def test_limits_refuse_values_that_cannot_work(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WebSocketLimits(**kwargs)
