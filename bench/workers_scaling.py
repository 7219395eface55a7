"""What a second server process buys on this machine: --workers 1 against --workers 2, interleaved.

    /work/venv/bin/python bench/workers_scaling.py [--server hypercorn|fluxlit] [--rounds 3] [--seconds 5]
        [--path /api/async]

--server hypercorn (default): plain FastAPI (apps/plain_api.py) on bare hypercorn, the ceiling.
--server fluxlit: `fluxlit serve bench_app:app --workers N` (apps/bench_app.py, with its Streamlit child).

Issue 9 asks for `--workers N` gateways with ">= 1.6x our single worker" at --workers 2. Before building it,
this measures the ceiling such a change could reach here: the same routes on bare hypercorn (uvloop) with one
and with two worker processes, interleaved, wrk at c=32 on the same 2 cores. The ratio it prints bounds what
two FluxLit gateway processes could gain over one.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

APPS = Path(__file__).resolve().parent / "apps"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def command_for(server: str, workers: int, port: int) -> tuple[list[str], str]:
    """The command line and the path that answers 200 once it is ready."""
    if server == "fluxlit":
        state = Path(tempfile.gettempdir()) / f"workers-scaling-{os.getpid()}-{port}.json"
        command = [sys.executable, "-m", "fluxlit", "serve", "bench_app:app", "--port", str(port),
                   "--workers", str(workers), "--state-file", str(state), "--log-format", "json"]  # fmt: skip
        return command, "/api/readyz"
    command = [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "--worker-class", "uvloop"]
    return [*command, "--workers", str(workers), "plain_api:app"], "/api/sync"


def start(server: str, workers: int, port: int) -> subprocess.Popen[bytes]:
    command, ready_path = command_for(server, workers, port)
    proc = subprocess.Popen(command, cwd=APPS, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"{server} --workers {workers} not ready on port {port} after 60 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID (hypercorn's parent, or fluxlit's supervisor, stops its workers), SIGKILL after 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def wrk(port: int, path: str, seconds: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", f"http://127.0.0.1:{port}{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("hypercorn", "fluxlit"), default="hypercorn")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--path", default="/api/async")
    args = parser.parse_args()
    ports = {workers: free_port() for workers in (1, 2)}
    servers: dict[int, subprocess.Popen[bytes]] = {}
    samples: dict[int, list[float]] = {1: [], 2: []}
    try:
        for workers, port in ports.items():
            servers[workers] = start(args.server, workers, port)
        for round_no in range(args.rounds):
            order = (1, 2) if round_no % 2 == 0 else (2, 1)
            for workers in order:
                wrk(ports[workers], args.path, 1)  # warm-up
                samples[workers].append(wrk(ports[workers], args.path, args.seconds))
            load1 = os.getloadavg()[0]
            print(f"round {round_no + 1}: 1 worker {samples[1][-1]:,.0f}, 2 workers {samples[2][-1]:,.0f} req/s "
                  f"(load1 {load1:.2f})")  # fmt: skip
    finally:
        for proc in servers.values():
            stop(proc)
    one, two = statistics.median(samples[1]), statistics.median(samples[2])
    print(f"{args.server} {args.path} c=32 on {os.cpu_count()} cores: 1 worker {one:,.0f} req/s, "
          f"2 workers {two:,.0f} req/s, ratio {two / one:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
