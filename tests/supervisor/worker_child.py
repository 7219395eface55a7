"""A stand-in worker for supervisor tests: records its index and inherited sockets, then sleeps until signalled."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path


def main() -> None:
    out = Path(sys.argv[1])
    if "--ignore-sigterm" in sys.argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fds = json.loads(os.environ["SUPERVISOR_WORKER_FDS"])
    ports = [socket.socket(fileno=fd).getsockname()[1] for fd in fds["insecure"]]
    record = {"index": os.environ["SUPERVISOR_WORKER_INDEX"], "ports": ports, "notify": os.environ.get("NOTIFY_SOCKET")}
    tmp = out / f".{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record))
    tmp.rename(out / f"{os.getpid()}.json")
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
