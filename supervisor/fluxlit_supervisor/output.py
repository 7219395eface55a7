"""Child output: split a byte stream into bounded text lines and hand each to a callback."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Literal, TypeAlias

logger = logging.getLogger("supervisor")
child_logger = logging.getLogger("supervisor.child")

StreamName: TypeAlias = Literal["stdout", "stderr"]
OutputCallback: TypeAlias = Callable[[str, str, int, int], None]

MAX_LINE_BYTES = 16 * 1024
STDERR_TAIL_LINES = 40
_READ_SIZE = 64 * 1024


class LineSplitter:
    """Bytes in, complete decoded lines out; an over-long line is cut into MAX_LINE_BYTES pieces."""

    def __init__(self, max_bytes: int = MAX_LINE_BYTES) -> None:
        self._max_bytes = max_bytes
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[str]:
        self._buffer.extend(data)
        lines: list[str] = []
        while True:
            newline = self._buffer.find(b"\n")
            if newline == -1:
                break
            lines.extend(self._pieces(bytes(self._buffer[:newline])))
            del self._buffer[: newline + 1]
        # Without a newline in sight, a runaway line must not grow the buffer without bound.
        while len(self._buffer) >= self._max_bytes:
            lines.append(_decode(bytes(self._buffer[: self._max_bytes])))
            del self._buffer[: self._max_bytes]
        return lines

    def flush(self) -> list[str]:
        """The unterminated remainder at end of stream, if any."""
        rest, self._buffer = bytes(self._buffer), bytearray()
        return [_decode(rest)] if rest else []

    def _pieces(self, line: bytes) -> list[str]:
        if not line:
            return [""]
        return [_decode(line[i : i + self._max_bytes]) for i in range(0, len(line), self._max_bytes)]


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r")


def log_child_output(stream: str, line: str, pid: int, generation: int) -> None:
    """The default output sink: one INFO record per line on the `supervisor.child` logger."""
    child_logger.info("%s", line, extra={"child_stream": stream, "child_pid": pid, "generation": generation})


async def pump_lines(
    reader: asyncio.StreamReader,
    stream: str,
    pid: int,
    generation: int,
    sink: OutputCallback,
    tail: deque[str] | None = None,
) -> None:
    """Read `reader` to EOF, passing each line to `sink` (and keeping the last ones in `tail`)."""
    splitter = LineSplitter()
    while True:
        data = await reader.read(_READ_SIZE)
        lines = splitter.feed(data) if data else splitter.flush()
        for line in lines:
            if tail is not None:
                tail.append(line)
            try:
                sink(stream, line, pid, generation)
            except Exception:
                logger.exception("child output callback failed", extra={"child_stream": stream})
        if not data:
            return


def new_tail() -> deque[str]:
    """A bounded buffer for the last stderr lines, quoted when a start fails."""
    return deque(maxlen=STDERR_TAIL_LINES)
