"""Splitting child output into bounded lines."""

from __future__ import annotations

import asyncio
import logging

import pytest
from fluxlit_supervisor.output import LineSplitter, pump_lines


@pytest.mark.parametrize(
    ("chunks", "lines"),
    [
        ([b"one\ntwo\n"], ["one", "two"]),
        ([b"on", b"e\ntw", b"o\n"], ["one", "two"]),
        ([b"crlf\r\n"], ["crlf"]),
        ([b"\n\n"], ["", ""]),
        ([b"caf\xc3", b"\xa9\n"], ["caf\u00e9"]),
        ([b"bad \xff byte\n"], ["bad \ufffd byte"]),
    ],
)
def test_feed(chunks: list[bytes], lines: list[str]) -> None:
    assert _feed_all(LineSplitter(), chunks) == lines


@pytest.mark.parametrize(
    ("chunks", "lines"),
    [
        ([b"abcdefghij"], ["abcd", "efgh"]),
        ([b"abcdefghij\n"], ["abcd", "efgh", "ij"]),
        ([b"ab", b"cd", b"ef\n"], ["abcd", "ef"]),
    ],
)
def test_overlong_lines_are_cut_so_memory_stays_bounded(chunks: list[bytes], lines: list[str]) -> None:
    assert _feed_all(LineSplitter(max_bytes=4), chunks) == lines


def _feed_all(splitter: LineSplitter, chunks: list[bytes]) -> list[str]:
    produced: list[str] = []
    for chunk in chunks:
        produced += splitter.feed(chunk)
    return produced


def test_flush_returns_the_unterminated_tail_once() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"done\npartial") == ["done"]
    assert splitter.flush() == ["partial"]
    assert splitter.flush() == []


@pytest.mark.anyio
async def test_a_failing_output_callback_is_logged_and_pumping_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"first\nsecond\n")
    reader.feed_eof()
    seen: list[str] = []

    def sink(stream: str, line: str, pid: int, generation: int) -> None:
        seen.append(line)
        if line == "first":
            raise RuntimeError("sink broke")

    with caplog.at_level(logging.ERROR, logger="supervisor"):
        await pump_lines(reader, "stderr", 42, 3, sink)
    assert seen == ["first", "second"]
    assert "child output callback failed" in caplog.text
