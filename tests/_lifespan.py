"""The ASGI lifespan protocol answered as an app with nothing to set up: startup and shutdown complete at once."""

from __future__ import annotations

from typing import Any


async def answer_lifespan(receive: Any, send: Any) -> None:
    """Complete every startup the server asks for, then the shutdown, and return."""
    while (await receive())["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})
