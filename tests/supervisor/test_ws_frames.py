"""Announced frame lengths read off a client's bytes: refused at the header, however the bytes are split."""

from __future__ import annotations

import struct

import pytest
from fluxlit_supervisor.websocket.frames import FrameLengthScanner, header_size, payload_length


def frame(opcode: int, length: int, *, fin: bool = True, masked: bool = True, payload: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    mask = 0x80 if masked else 0
    if length < 126:
        head = bytes([first, mask | length])
    elif length < 1 << 16:
        head = bytes([first, mask | 126]) + struct.pack("!H", length)
    else:
        head = bytes([first, mask | 127]) + struct.pack("!Q", length)
    return head + (bytes(4) if masked else b"") + (bytes(length) if payload else b"")


TEXT, BINARY, CONTINUATION, PING, CLOSE = 0x1, 0x2, 0x0, 0x9, 0x8


@pytest.mark.parametrize(
    ("stream", "accepted"),
    [
        (frame(BINARY, 100), True),
        (frame(BINARY, 101), False),
        (frame(BINARY, 125) + frame(BINARY, 126) + frame(TEXT, 100), False),  # 126 > 100
        (frame(TEXT, 60, fin=False) + frame(CONTINUATION, 40), True),
        (frame(TEXT, 60, fin=False) + frame(CONTINUATION, 41), False),
        (frame(TEXT, 60, fin=False) + frame(PING, 125) + frame(CONTINUATION, 40), True),  # control frames are apart
        (frame(BINARY, 100) + frame(BINARY, 100) + frame(CLOSE, 2), True),  # each message starts from zero
        (frame(BINARY, 2**40, payload=False), False),  # refused on the header alone
        (frame(BINARY, 70_000, payload=False)[:4], True),  # a header still incomplete decides nothing
        (frame(BINARY, 0), True),
    ],
)
def test_a_message_is_refused_once_its_announced_length_passes_the_limit(stream: bytes, accepted: bool) -> None:
    assert FrameLengthScanner(100).feed(stream) is accepted


@pytest.mark.parametrize("limit", [100, 1000])
def test_the_verdict_does_not_depend_on_how_the_bytes_are_split(limit: int) -> None:
    stream = frame(TEXT, 90, fin=False) + frame(PING, 4) + frame(CONTINUATION, 300) + frame(BINARY, 70_000)
    whole = FrameLengthScanner(limit)
    whole_verdict = whole.feed(stream)
    one_by_one = FrameLengthScanner(limit)
    verdicts = [one_by_one.feed(stream[i : i + 1]) for i in range(len(stream))]
    assert all(verdicts) is whole_verdict
    assert one_by_one.refused is whole.refused is (not whole_verdict)


def test_a_refused_scanner_stays_refused() -> None:
    scanner = FrameLengthScanner(10)
    assert scanner.feed(frame(BINARY, 11)) is False
    assert scanner.feed(frame(BINARY, 1)) is False


@pytest.mark.parametrize(
    ("start", "size", "length"),
    [
        (bytes([0x82, 0x05]), 2, 5),
        (bytes([0x82, 0x85]), 6, 5),
        (bytes([0x82, 126]) + struct.pack("!H", 300), 4, 300),
        (bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 2**40), 14, 2**40),
    ],
)
def test_header_size_and_payload_length_follow_rfc_6455(start: bytes, size: int, length: int) -> None:
    assert header_size(start) == size
    assert payload_length(start) == length


def test_one_byte_is_not_enough_to_size_a_header() -> None:
    assert header_size(b"\x82") is None
