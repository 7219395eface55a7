"""Answers the proxy gives by itself: short plain-text HTTP responses and WebSocket denials."""

from __future__ import annotations

from .asgi import Headers, Scope, Send
from .close_codes import sendable_close_code, sendable_close_reason


def plain_headers(body: bytes, retry_after_seconds: int | None = None) -> Headers:
    headers: Headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    if retry_after_seconds is not None:
        headers.append((b"retry-after", str(retry_after_seconds).encode("ascii")))
    return headers


async def send_plain_response(send: Send, status: int, text: str, *, retry_after_seconds: int | None = None) -> None:
    body = (text + "\n").encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": plain_headers(body, retry_after_seconds),
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def can_deny_with_response(scope: Scope) -> bool:
    return "websocket.http.response" in (scope.get("extensions") or {})


async def deny_websocket(
    scope: Scope, send: Send, *, status: int, headers: Headers, body: bytes, close_code: int, reason: str
) -> None:
    """Refuse a WebSocket handshake with an HTTP response when the server can send one, else a close."""
    if can_deny_with_response(scope):
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
    else:
        await send(
            {
                "type": "websocket.close",
                "code": sendable_close_code(close_code),
                "reason": sendable_close_reason(reason),
            }
        )


async def deny_websocket_plain(
    scope: Scope, send: Send, status: int, text: str, close_code: int, retry_after_seconds: int | None = None
) -> None:
    body = (text + "\n").encode("utf-8")
    await deny_websocket(
        scope,
        send,
        status=status,
        headers=plain_headers(body, retry_after_seconds),
        body=body,
        close_code=close_code,
        reason=text,
    )
