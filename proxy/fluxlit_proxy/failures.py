"""Upstream failures: what each is called, the status or close code it becomes, the hook kind it counts as."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Failure(enum.Enum):
    """Why an exchange with the upstream failed. Values: (hook kind, HTTP status, client text)."""

    CONNECT_REFUSED = ("connect", 502, "upstream unreachable")
    CONNECT_TIMEOUT = ("connect", 502, "upstream connect timed out")
    READ_TIMEOUT = ("timeout", 504, "upstream did not respond in time")
    WRITE_TIMEOUT = ("timeout", 504, "upstream stopped reading the request")
    RESET = ("reset", 502, "upstream closed the connection")
    PROTOCOL = ("protocol", 502, "upstream sent a malformed response")

    @property
    def hook_kind(self) -> str:
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]

    @property
    def text(self) -> str:
        return self.value[2]


class UpstreamError(Exception):
    """An exchange with the upstream failed; `detail` is for the log line only."""

    def __init__(self, failure: Failure, detail: str = "") -> None:
        super().__init__(f"{failure.text}: {detail}" if detail else failure.text)
        self.failure = failure
        self.detail = detail


class ResponseAborted(Exception):
    """Raised out of the ASGI app when the upstream failed after the response had started.

    The only honest signal left is to drop the client connection; an ASGI server does that when the
    app raises mid-response (hypercorn logs the exception and closes the connection), so the client
    sees a truncated body instead of one presented as complete.
    """


class BodyTooLarge(Exception):
    """The client's request body exceeds ProxyConfig.max_request_body_bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class Refusal:
    """What the client is told when the proxy answers itself: an HTTP status or a WebSocket close."""

    status: int
    text: str
    close_code: int
    retry_after_seconds: int | None = None


def websocket_refusal_for_failure(failure: Failure) -> Refusal:
    """A WebSocket handshake that could not reach the upstream: 502/504 or close 1011."""
    return Refusal(failure.status, failure.text, close_code=1011)


def unavailable_refusal(reason: str, retry_after_seconds: int, restarting: bool) -> Refusal:
    # 1012 "service restart" tells the browser to reconnect by itself; 1013 "try again later"
    # covers every other reason the upstream is down.
    return Refusal(503, reason, close_code=1012 if restarting else 1013, retry_after_seconds=retry_after_seconds)


def body_too_large_refusal(limit: int) -> Refusal:
    return Refusal(413, f"request body exceeds {limit} bytes", close_code=1009)
