"""What one upstream WebSocket message may cost: refused by its announced length, reassembled against a budget.

ASGI has no fragments, so every message the upstream sends is held here until it is whole. Two bounds apply:
a per-message limit, checked on each frame's announced length before its payload arrives (MessageSizeGuard),
and a budget of bytes held in reassembly shared with every other session (and, through the owner, with the ASGI
server's own reassembly of client messages). Text is charged in characters, as the ASGI server counts it.
"""

from __future__ import annotations

from typing import Protocol

from wsproto.events import BytesMessage, TextMessage
from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

from .asgi import Message as AsgiMessage

_NO_RSV_BITS = RsvBits(False, False, False)
# Why a message was refused; both are closed with 1009 (RFC 6455 7.4.1: too big to process).
TOO_BIG = "message too big"
OVER_BUDGET = "too many bytes held in reassembly"


class ReassemblyBudget(Protocol):
    """Bytes held across sessions; `reserve` is False when `size` more would pass the limit."""

    def reserve(self, size: int) -> bool: ...

    def release(self, size: int) -> None: ...


class MessageSizeGuard(Extension):
    """A wsproto extension that negotiates nothing and refuses a message by its frames' announced lengths.

    RFC 6455 5.2 puts a frame's payload length in its header, so a frame announcing 2**40 bytes is refused with
    1009 when the header arrives, not after the limit's worth of payload. wsproto reports the refusal as a
    CloseConnection with code 1009 while the connection is still open.
    """

    name = "proxy-message-size-guard"

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._announced = 0

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool:
        return False  # nothing to negotiate: it only reads headers

    def frame_inbound_header(
        self, proto: FrameDecoder | FrameProtocol, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        if opcode.iscontrol():
            return _NO_RSV_BITS
        if opcode is not Opcode.CONTINUATION:
            self._announced = 0
        self._announced += payload_length
        if self._announced > self._limit:
            return CloseReason.MESSAGE_TOO_BIG
        return _NO_RSV_BITS


class Reassembly:
    """Frames of one message collected until it is whole; each frame is charged to the budget as it comes.

    The per-message limit is not checked here: MessageSizeGuard refused any frame that would pass it.
    """

    def __init__(self, budget: ReassemblyBudget | None = None) -> None:
        self._budget = budget
        self._text: list[str] = []
        self._data = bytearray()
        self.size = 0

    def add(self, event: TextMessage | BytesMessage) -> bool:
        """False when the budget is spent (OVER_BUDGET), with what was held already freed."""
        size = len(event.data)
        if self._budget is not None and not self._budget.reserve(size):
            self.discard()
            return False
        self.size += size
        if isinstance(event.data, str):
            self._text.append(event.data)
        else:
            self._data += event.data
        return True

    def take(self) -> tuple[int, AsgiMessage]:
        size = self.size
        if self._text:
            message: AsgiMessage = {"type": "websocket.send", "text": "".join(self._text)}
        else:
            message = {"type": "websocket.send", "bytes": bytes(self._data)}
        self.discard()
        return size, message

    def discard(self) -> None:
        """Drop what is held and give it back to the budget (idempotent)."""
        if self._budget is not None and self.size:
            self._budget.release(self.size)
        self.size = 0
        self._text = []
        self._data = bytearray()
