"""Readiness probe: a tiny HTTP/1.0 GET over a TCP stream, 2xx means ready."""

from __future__ import annotations

import re

import anyio

_STATUS_LINE = re.compile(rb"^HTTP/\d\.\d (\d{3})(?: |\r?$)")
_MAX_HEAD_BYTES = 4096


def parse_status_code(head: bytes) -> int | None:
    """The status code from the first line of an HTTP response, or None when it is not one."""
    first_line = head.split(b"\n", 1)[0]
    match = _STATUS_LINE.match(first_line.rstrip(b"\r"))
    return int(match.group(1)) if match else None


def is_ready_status(code: int | None) -> bool:
    return code is not None and 200 <= code < 300


def probe_request(host: str, port: int, path: str) -> bytes:
    """The exact bytes of the probe request."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return (
        f"GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: supervisor-probe\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")


async def probe_http(host: str, port: int, path: str, deadline: float) -> bool:
    """GET `path` once; True only for a 2xx status line within `deadline` seconds."""
    with anyio.move_on_after(deadline):
        try:
            async with await anyio.connect_tcp(host, port) as stream:
                await stream.send(probe_request(host, port, path))
                head = b""
                while b"\n" not in head and len(head) < _MAX_HEAD_BYTES:
                    head += await stream.receive(_MAX_HEAD_BYTES)
                return is_ready_status(parse_status_code(head))
        except (OSError, anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
    return False
