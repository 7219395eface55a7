"""Running a server command in the test's own process, and stopping it the way a process manager would."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx


class SigtermOnceHealthy:
    """From a side thread: wait for `url` to answer 200, then SIGTERM this process, as a process manager would."""

    def __init__(self, url: str, deadline_s: float = 30.0) -> None:
        self.url = url
        self.deadline_s = deadline_s
        self.finished = threading.Event()  # the run ended by itself: send nothing
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> SigtermOnceHealthy:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finished.set()
        self.thread.join(timeout=self.deadline_s)

    def _watch(self) -> None:
        deadline = time.monotonic() + self.deadline_s
        while time.monotonic() < deadline and not self.finished.is_set():
            try:
                if httpx.get(self.url, timeout=1).status_code == 200:
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
