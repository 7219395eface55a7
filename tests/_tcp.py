"""A scripted TCP server on loopback for tests that play the other end of a connection (a proxy, a WebSocket peer)."""

from __future__ import annotations

import socket
import threading
from typing import TypeVar

_Server = TypeVar("_Server", bound="LoopbackTcpServer")


class LoopbackTcpServer:
    """Listens on 127.0.0.1 (a free port) while its `with` block runs; each connection goes to `handle` in a daemon
    thread of its own. `stopped` is set when the block ends, for handlers that wait."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)  # how often the accept loop looks at `stopped`
        self.port: int = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def __enter__(self: _Server) -> _Server:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self._thread.join(timeout=5)
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()
