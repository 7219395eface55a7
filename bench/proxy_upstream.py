"""Benchmark processes: the upstream (tiny ASGI app + a 4 MiB file + WS echo) or the proxy in front of it.

    python bench/proxy_upstream.py upstream --fd N [--loop uvloop]
    python bench/proxy_upstream.py proxy --fd N --upstream-port P [--loop uvloop]

The listening socket is bound by the parent and inherited as fd N, so no port is ever guessed. The
upstream serves everything from memory (no disk reads), so "direct" is the cheapest an ASGI server can be.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any, cast

from hypercorn.asyncio import serve
from hypercorn.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests._lifespan import answer_lifespan

FILE_BYTES = bytes(range(256)) * (4 * 1024 * 4)  # 4 MiB
CHUNK = 256 * 1024


async def upstream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})
    path = scope["path"]
    if path == "/file":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(FILE_BYTES))]}
        )
        for start in range(0, len(FILE_BYTES), CHUNK):
            more = start + CHUNK < len(FILE_BYTES)
            await send({"type": "http.response.body", "body": FILE_BYTES[start : start + CHUNK], "more_body": more})
        return
    if path == "/stream":
        total = int(scope["query_string"].decode().partition("=")[2] or 100) * 1024 * 1024
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % total)]})
        block = b"s" * (64 * 1024)
        for _ in range(total // len(block)):
            await send({"type": "http.response.body", "body": block, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["upstream", "proxy"])
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--upstream-port", type=int)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # The upstream keeps writing a response whose connection the proxy closed (the load generator
    # hung up mid-file); asyncio's "socket.send() raised exception" is expected noise then.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    config = Config()
    config.bind = [f"fd://{args.fd}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.websocket_max_message_size = 256 * 1024 * 1024
    config.graceful_timeout = 1.0
    app: Any = upstream_app
    if args.role == "proxy":
        from fluxlit_proxy import ReverseProxy, Upstream

        upstream = Upstream(port=args.upstream_port)
        app = cast(Any, ReverseProxy(lambda: upstream))  # our ASGI aliases are plain mappings, not hypercorn's
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(serve(app, config))
    else:
        asyncio.run(serve(app, config))


if __name__ == "__main__":
    main()
