"""Supervisor timings of `fluxlit serve` on this machine: cold start to ready, and child death to ready again.

    python bench/serve_timings.py [--starts 5] [--kills 10]

Prints medians and ranges; loopback only, every process stopped by its PID.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests._live import LiveServer


def wait_status(live: LiveServer, wanted: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if live.get("/api/readyz", timeout=2).status_code == wanted:
                return time.monotonic() - started
        except Exception:
            pass
        time.sleep(0.01)
    raise SystemExit(f"readyz never answered {wanted} within {timeout}s:\n{live.log()[-2000:]}")


def cold_starts(count: int) -> list[float]:
    times = []
    for _ in range(count):
        with tempfile.TemporaryDirectory() as workdir:
            live = LiveServer(Path(workdir))
            started = time.monotonic()
            live.start()
            try:
                wait_status(live, 200, 120)
                times.append(time.monotonic() - started)
            finally:
                live.stop()
    return times


def restarts(count: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory() as workdir:
        env = {"FLUXLIT_RESTART_MAX_FAILURES": str(count + 5), "FLUXLIT_RESTART_BACKOFF_MAX_S": "0.5"}
        live = LiveServer(Path(workdir), env=env).start()
        try:
            live.wait_ready()
            for _ in range(count):
                time.sleep(1.0)  # let the previous generation settle
                pid = live.child_pid()
                killed = time.monotonic()
                os.kill(pid, signal.SIGKILL)
                wait_status(live, 503, 10)
                wait_status(live, 200, 60)
                times.append(time.monotonic() - killed)
        finally:
            live.stop()
    return times


def describe(name: str, values: list[float]) -> str:
    return (
        f"{name}: median {statistics.median(values):.3f} s, min {min(values):.3f} s, max {max(values):.3f} s "
        f"(n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--kills", type=int, default=10)
    args = parser.parse_args()
    print(describe("cold start -> /api/readyz 200", cold_starts(args.starts)))
    print(describe("child SIGKILL -> /api/readyz 200 again", restarts(args.kills)))


if __name__ == "__main__":
    main()
