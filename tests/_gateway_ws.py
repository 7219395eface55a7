"""One WebSocket handed to a gateway in-process, as hypercorn would hand it over, for tests that read exactly what
the gateway sent back (a close code and reason, a denial's headers)."""

from __future__ import annotations

from typing import Any

import anyio


def open_websocket(gateway: Any, raw_path: bytes, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    """Connect one WebSocket to `gateway` in-process, as hypercorn would hand it over; what the gateway sent."""
    scope: dict[str, Any] = {
        "type": "websocket",
        "path": raw_path.decode(),
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    anyio.run(gateway, scope, receive, send)
    return sent
