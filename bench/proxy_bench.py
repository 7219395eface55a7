"""Direct vs proxied, measured in one run on loopback: req/s and latency, file MB/s, WS round trip, proxy RSS.

    /work/venv/bin/python bench/proxy_bench.py [--seconds 4] [--loop asyncio|uvloop]

Runs the upstream and the proxy (each hypercorn, each its own process, both on the same event loop)
and the load generator on the same machine, so only the ratios matter; every figure is measured
A B A B (direct, proxied, twice) and the better of each pair is kept. Uses wrk when installed, else
a bounded Python load loop.

"direct" is one Python process (the upstream, serving every body from memory) plus the load
generator; "proxied" adds a second Python process that parses and re-serializes every request and
response, so on two shared cores it cannot reach 1.0x: the proxy does at least the upstream's
server-side work per request plus an HTTP client's.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
from websockets.asyncio.client import connect

HERE = Path(__file__).resolve().parent
WRK = shutil.which("wrk") or ("/usr/bin/wrk" if os.path.exists("/usr/bin/wrk") else None)
# The gateway runs on uvloop when it is installed (fluxlit_supervisor.runner), and so does Streamlit's uvicorn.
DEFAULT_LOOP = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


@contextmanager
def server(role: str, loop: str, upstream_port: int | None = None) -> Generator[tuple[int, psutil.Process], None, None]:
    """Start one hypercorn process on an inherited, already-listening socket; stop it by PID."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    argv = [sys.executable, str(HERE / "proxy_upstream.py"), role, "--fd", str(sock.fileno()), "--loop", loop]
    if upstream_port is not None:
        argv += ["--upstream-port", str(upstream_port)]
    process = subprocess.Popen(argv, pass_fds=[sock.fileno()], cwd=HERE.parent)
    sock.close()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/small", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{role} did not start")
            time.sleep(0.05)
        yield port, psutil.Process(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
_SIZE = {"B": 1 / 1e6, "KB": 1024 / 1e6, "MB": 1024**2 / 1e6, "GB": 1024**3 / 1e6}


def run_wrk(url: str, connections: int, seconds: float) -> dict[str, float]:
    threads = min(2, connections)
    out = subprocess.run(
        [WRK or "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rps is not None, out
    result = {"rps": float(rps.group(1))}
    size = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    assert size is not None
    result["mbps"] = float(size.group(1)) * _SIZE[size.group(2)]
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(\w+)", out, re.MULTILINE)
        assert match is not None
        result[f"p{pct}"] = float(match.group(1)) * _UNITS[match.group(2)]
    return result


async def python_load(url: str, connections: int, seconds: float) -> dict[str, float]:
    """Fallback when wrk is absent: keep-alive clients in a bounded loop."""
    latencies: list[float] = []
    moved = 0
    stop = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal moved
        while time.perf_counter() < stop:
            started = time.perf_counter()
            response = await client.get(url)
            latencies.append((time.perf_counter() - started) * 1000)
            moved += len(response.content)

    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))
    latencies.sort()
    return {
        "rps": len(latencies) / seconds,
        "mbps": moved / seconds / 1e6,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[int(len(latencies) * 0.99)],
    }


def load(url: str, connections: int, seconds: float) -> dict[str, float]:
    if WRK:
        return run_wrk(url, connections, seconds)
    return asyncio.run(python_load(url, connections, seconds))


async def ws_round_trip_ms(port: int, count: int = 2000) -> float:
    samples = []
    async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
        for _ in range(50):
            await ws.send("warm")
            await ws.recv()
        for _ in range(count):
            started = time.perf_counter()
            await ws.send("ping!")
            await ws.recv()
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def stream_100_mib(port: int, watched: psutil.Process) -> tuple[float, float]:
    """Stream 100 MiB through `port` while sampling `watched`'s RSS: (MB/s, RSS growth in MiB)."""
    before = peak = watched.memory_info().rss
    received = 0
    started = time.perf_counter()
    with httpx.stream("GET", f"http://127.0.0.1:{port}/stream?mib=100", timeout=60) as response:
        for chunk in response.iter_raw(1024 * 1024):
            received += len(chunk)
            peak = max(peak, watched.memory_info().rss)
    elapsed = time.perf_counter() - started
    assert received == 100 * 1024 * 1024
    return received / elapsed / 1e6, (peak - before) / 1024**2


def best(samples: list[dict[str, float]], key: str, higher_is_better: bool) -> float:
    values = [sample[key] for sample in samples]
    return max(values) if higher_is_better else min(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each load run")
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default=DEFAULT_LOOP,
        help="event loop of both the upstream and the proxy process (default: uvloop when installed, as in production)",
    )
    args = parser.parse_args()
    rows: list[tuple[Any, ...]] = []  # (label, direct, proxied, unit, higher is better)

    upstream_server = server("upstream", args.loop)
    with (
        upstream_server as (upstream_port, upstream_proc),
        server("proxy", args.loop, upstream_port) as (proxy_port, proxy),
    ):
        targets = {"direct": upstream_port, "proxied": proxy_port}
        for name, url_path, conns in (
            ("small c=1", "/small", 1),
            ("small c=32", "/small", 32),
            ("4 MiB c=8", "/file", 8),
        ):
            results: dict[str, list[dict[str, float]]] = {"direct": [], "proxied": []}
            for _ in range(2):  # A B A B
                for mode, port in targets.items():
                    results[mode].append(load(f"http://127.0.0.1:{port}{url_path}", conns, args.seconds))
            if url_path == "/file":
                rows.append((f"{name} MB/s", *(best(results[m], "mbps", True) for m in targets), "MB/s", True))
            else:
                rows.append((f"{name} req/s", *(best(results[m], "rps", True) for m in targets), "req/s", True))
                rows.append((f"{name} p50", *(best(results[m], "p50", False) for m in targets), "ms", False))
                rows.append((f"{name} p99", *(best(results[m], "p99", False) for m in targets), "ms", False))

        ws = {mode: [asyncio.run(ws_round_trip_ms(port)) for _ in range(2)] for mode, port in targets.items()}
        rows.append(("WS round trip median", min(ws["direct"]), min(ws["proxied"]), "ms", False))

        direct_rate, direct_growth = stream_100_mib(upstream_port, upstream_proc)
        proxied_rate, proxied_growth = stream_100_mib(proxy_port, proxy)
        rows.append(("100 MiB stream MB/s", direct_rate, proxied_rate, "MB/s", True))
        rows.append(("RSS growth while streaming", direct_growth, proxied_growth, "MiB", False))
        proxy_rss = proxy.memory_info().rss / 1024**2

    print(f"load generator: {'wrk' if WRK else 'python'}; {os.cpu_count()} cores shared by all processes")
    print(f"event loop of upstream and proxy: {args.loop}; the upstream serves every body from memory")
    print(f"{'figure':<30} {'direct':>12} {'proxied':>12} {'proxied/direct':>15}")
    for label, direct, proxied, unit, _ in rows:
        ratio = f"{proxied / direct:.2f}x" if direct else "-"
        print(f"{label:<30} {direct:>9.2f} {unit:<3}{proxied:>9.2f} {unit:<3}{ratio:>14}")
    print("RSS growth 'direct' is the upstream process's own growth while serving the same stream.")
    print(f"proxy process RSS after the run: {proxy_rss:.1f} MiB")


if __name__ == "__main__":
    main()
