"""Which WebSocket close code and reason cross from one leg to the other."""

from __future__ import annotations

NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
SERVICE_RESTART = 1012
TRY_AGAIN_LATER = 1013

# RFC 6455 7.4.1: these describe what a peer observed and must never be sent in a close frame.
# 1005 means the peer closed cleanly without a code; 1006 and 1015 mean it vanished or broke.
_LOCAL_ONLY = {1005: NORMAL, 1006: INTERNAL_ERROR, 1015: INTERNAL_ERROR}
_SENDABLE_REGISTERED = frozenset({*range(1000, 1004), *range(1007, 1015)})

# A close frame payload is at most 125 bytes, two of which carry the code.
MAX_REASON_BYTES = 123


def sendable_close_code(code: int | None) -> int:
    """The code to put on the wire for a close observed as `code` on the other leg."""
    if code is None:
        return NORMAL
    if code in _LOCAL_ONLY:
        return _LOCAL_ONLY[code]
    if code in _SENDABLE_REGISTERED or 3000 <= code <= 4999:
        return code
    # Reserved or out of range: the other leg broke the protocol; say so without inventing meaning.
    return INTERNAL_ERROR


def sendable_close_reason(reason: str | None) -> str:
    """The reason cut to what fits a close frame, never splitting a UTF-8 character."""
    if not reason:
        return ""
    encoded = reason.encode("utf-8")
    if len(encoded) <= MAX_REASON_BYTES:
        return reason
    return encoded[:MAX_REASON_BYTES].decode("utf-8", errors="ignore")


def code_after_upstream_loss(restarting: bool) -> int:
    """The upstream vanished without a close frame: 1012 makes browsers retry when it is restarting."""
    return SERVICE_RESTART if restarting else INTERNAL_ERROR
