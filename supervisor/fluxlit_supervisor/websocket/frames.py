"""Reading the announced lengths off a client's WebSocket bytes, so an oversized message is refused at its header.

RFC 6455 5.2: every frame starts with a 2-14 byte header whose payload length comes before the payload. The
server's parser (wsproto, inside hypercorn) passes payload on as it arrives and its reassembly notices the
limit only once that many bytes came; this reads the headers alone, skipping payload by count, so a frame
announcing 2**40 bytes is refused when its header arrives. It never copies or unmasks payload, and it does
not validate frames: the real parser still does.
"""

from __future__ import annotations

import struct

_CONTINUATION = 0x0
_CONTROL = 0x8  # opcodes 0x8-0xF are control frames, at most 125 bytes, never part of a message
_LONGEST_HEADER = 14


def header_size(start: bytes | bytearray) -> int | None:
    """How long the header beginning with `start` is, once its first two bytes are known."""
    if len(start) < 2:
        return None
    short = start[1] & 0x7F
    extended = 2 if short == 126 else 8 if short == 127 else 0
    masked = 4 if start[1] & 0x80 else 0
    return 2 + extended + masked


def payload_length(header: bytes | bytearray) -> int:
    short = header[1] & 0x7F
    if short == 126:
        return int(struct.unpack_from("!H", header, 2)[0])
    if short == 127:
        return int(struct.unpack_from("!Q", header, 2)[0])
    return short


class FrameLengthScanner:
    """Follows frame boundaries in what one client sends; `feed` is False once a message's announced length
    passes `limit` (and stays False: the connection is being refused)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._header = bytearray()  # a header split across reads
        self._skip = 0  # payload bytes of the current frame not yet seen
        self._announced = 0  # announced bytes of the message in progress
        self.refused = False

    def feed(self, data: bytes) -> bool:
        position, end = 0, len(data)
        while position < end and not self.refused:
            if self._skip:
                step = min(self._skip, end - position)
                self._skip -= step
                position += step
                continue
            had = len(self._header)
            self._header += data[position : position + _LONGEST_HEADER - had]
            size = header_size(self._header)
            if size is None or len(self._header) < size:
                position = end
                continue
            position += size - had
            self._frame(bytes(self._header[:size]))
            self._header.clear()
        return not self.refused

    def _frame(self, header: bytes) -> None:
        opcode = header[0] & 0x0F
        length = payload_length(header)
        self._skip = length
        if opcode >= _CONTROL:
            return
        if opcode != _CONTINUATION:
            self._announced = 0
        self._announced += length
        if self._announced > self._limit:
            self.refused = True
