"""Per-replica figures for docs/scaling.md: one replica direct vs two behind nginx (replica-cookie recipe).

    python bench/replicas.py [--seconds 5]

Prints API req/s (wrk, 32 connections) for each layout, measured A B A B, and RSS per replica (gateway and
Streamlit child). Loopback only; every process is stopped by its PID.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests._edge import Nginx
from tests._live import LiveServer


def wrk_rps(url: str, seconds: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", url], capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def tree_rss_mib(pid: int) -> tuple[float, float]:
    gateway = psutil.Process(pid)
    children = gateway.children(recursive=True)
    return gateway.memory_info().rss / 2**20, sum(c.memory_info().rss for c in children) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        replicas = [LiveServer(root / name, "--replica-id", name) for name in ("replica-a", "replica-b")]
        for live in replicas:
            live.workdir.mkdir()
            live.start()
        edge = None
        try:
            for live in replicas:
                live.wait_ready()
            a, b = replicas
            edge = Nginx(
                root,
                "fluxlit-replicas.conf",
                a.port,
                site_replacements={"127.0.0.1:8001": f"127.0.0.1:{a.port}", "127.0.0.1:8002": f"127.0.0.1:{b.port}"},
            ).start()
            one, two = [], []
            for _ in range(args.rounds):
                one.append(wrk_rps(f"{a.base}/api/smoke", args.seconds))
                two.append(wrk_rps(f"{edge.base}/api/smoke", args.seconds))
            print(f"one replica, direct:           {statistics.median(one):8.0f} req/s  (rounds {one})")
            print(f"two replicas behind nginx:     {statistics.median(two):8.0f} req/s  (rounds {two})")
            for live in replicas:
                assert live.proc is not None
                gateway, child = tree_rss_mib(live.proc.pid)
                print(f"RSS after load, {live.argv[-1]}: gateway {gateway:.0f} MiB, Streamlit {child:.0f} MiB")
        finally:
            if edge is not None:
                edge.stop()
            for live in replicas:
                live.stop()


if __name__ == "__main__":
    main()
