"""hypercorn serving an ASGI app in a thread of the test process, on a loopback socket bound before it starts."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config


def loopback_listener() -> socket.socket:
    """A listening socket on a free 127.0.0.1 port: connections queue until hypercorn accepts, so no readiness wait."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.listen(128)
    return listener


class HypercornThread:
    """Runs `app` under `config` (whose bind is a duplicate of `listener`) from start() until stop()."""

    def __init__(self, app: Any, config: Config, listener: socket.socket, name: str) -> None:
        self._app, self._config, self._listener = app, config, listener
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(serve(self._app, self._config, shutdown_trigger=self._stop.wait))
        self._loop.close()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)
        self._listener.close()
        assert not self._thread.is_alive(), f"{self._thread.name}: hypercorn did not stop within 15 s"
