"""A stand-in child for supervisor tests: serves HTTP on --port and misbehaves on request."""

from __future__ import annotations

import argparse
import http.server
import os
import signal
import subprocess
import sys
import threading
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--exit-code", type=int, default=0)
    parser.add_argument("--exit-now", action="store_true", help="exit with --exit-code before serving")
    parser.add_argument("--exit-after", type=float, help="serve, then exit with --exit-code after N seconds")
    parser.add_argument("--stderr", default="", help="print this to stderr at start")
    parser.add_argument("--stdout", default="", help="print this to stdout at start")
    parser.add_argument("--status", type=int, default=200, help="status of every GET")
    parser.add_argument("--ready-delay", type=float, default=0.0)
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--grandchild-pidfile", help="start a sleeping grandchild and write its pid here")
    args = parser.parse_args()

    if args.stdout:
        print(args.stdout, flush=True)
    if args.stderr:
        print(args.stderr, file=sys.stderr, flush=True)
    if args.exit_now:
        sys.exit(args.exit_code)
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.grandchild_pidfile:
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        with open(args.grandchild_pidfile, "w") as handle:
            handle.write(str(grandchild.pid))
    if args.exit_after is not None:
        threading.Timer(args.exit_after, os._exit, (args.exit_code,)).start()
    time.sleep(args.ready_delay)

    status = args.status

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"child ok\n"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
