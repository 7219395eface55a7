"""What the full-stack bench measures on one target: wrk load, WebSocket handshake and rerun, browser, RSS, noise."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from websockets.typing import Subprotocol

STREAMLIT = Subprotocol("streamlit")

WRK = shutil.which("wrk") or "/usr/bin/wrk"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
CLK_TCK = os.sysconf("SC_CLK_TCK")

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}
_SIZE = {"B": 1 / 1e6, "KB": 1024 / 1e6, "MB": 1024**2 / 1e6, "GB": 1024**3 / 1e6}


class LoadFailed(RuntimeError):
    """wrk saw errors or non-2xx answers: the figure would measure failures, not the server."""


def run_wrk(url: str, connections: int, seconds: float) -> dict[str, float]:
    """req/s, MB/s, p50 and p99 (ms) from one bounded wrk run; any error or non-2xx answer fails it."""
    threads = min(2, connections)
    seconds = max(1, round(seconds))  # wrk takes whole seconds
    out = subprocess.run(
        [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout  # fmt: skip
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if bad or (errors and any(int(n) for n in errors.groups())):
        raise LoadFailed(f"wrk {url} c={connections}:\n{out}")
    result = {"rps": float(_search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    result["requests"] = float(_search(r"^\s+(\d+) requests in", out).group(1))
    size = _search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    result["mbps"] = float(size.group(1)) * _SIZE[size.group(2)]
    for pct in ("50", "99"):
        match = _search(rf"^\s+{pct}%\s+([\d.]+)(\w+)", out)
        result[f"p{pct}"] = float(match.group(1)) * _UNITS[match.group(2)]
    return result


def _search(pattern: str, text: str) -> re.Match[str]:
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        raise LoadFailed(f"no {pattern!r} in wrk output:\n{text}")
    return match


def load_with_cpu(url: str, connections: int, seconds: float, serving: psutil.Process) -> dict[str, float]:
    """run_wrk, plus the CPU the serving process spent per request (robust to noise, unlike req/s)."""
    before = serving.cpu_times()
    result = run_wrk(url, connections, seconds)
    after = serving.cpu_times()
    cpu = (after.user + after.system) - (before.user + before.system)
    result["cpu_us_per_req"] = 1e6 * cpu / max(result["requests"], 1)
    return result


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://", 1) + "/_stcore/stream"


def ws_handshake_ms(base: str) -> float:
    """One WebSocket handshake to Streamlit's stream (TCP connect to 101 accepted), then a clean close."""
    from websockets.sync.client import connect

    started = time.perf_counter()
    ws = connect(ws_url(base), subprotocols=[STREAMLIT], open_timeout=10, close_timeout=5)
    elapsed = (time.perf_counter() - started) * 1000
    if ws.subprotocol != "streamlit":
        raise RuntimeError(f"{base}: WebSocket subprotocol {ws.subprotocol!r}, expected 'streamlit'")
    ws.close()
    return elapsed


class RerunSession:
    """One Streamlit session over the stream: send BackMsg rerun_script, wait for ForwardMsg script_finished."""

    def __init__(self, base: str) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from websockets.sync.client import connect

        back = BackMsg()
        back.rerun_script.query_string = ""
        back.rerun_script.page_script_hash = ""
        self._rerun = back.SerializeToString()
        self._ws = connect(ws_url(base), subprotocols=[STREAMLIT], open_timeout=10, close_timeout=5)
        self.base = base
        self.rerun_ms(check=True)  # the first run creates the session: not a rerun

    def rerun_ms(self, timeout: float = 30.0, check: bool = False) -> float:
        """Milliseconds from sending rerun_script to script_finished; `check` fails on an exception element."""
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        started = time.perf_counter()
        self._ws.send(self._rerun)
        deadline = started + timeout
        while time.perf_counter() < deadline:
            message = ForwardMsg()
            message.ParseFromString(self._ws.recv(timeout=timeout))  # type: ignore[arg-type]
            kind = message.WhichOneof("type")
            if kind == "script_finished":
                return (time.perf_counter() - started) * 1000
            if check and kind == "delta" and message.delta.new_element.WhichOneof("type") == "exception":
                raise RuntimeError(f"{self.base}: the page raised {message.delta.new_element.exception.message}")
        raise RuntimeError("no script_finished within the timeout")

    def close(self) -> None:
        self._ws.close()


class Browser:
    """Debian's Chromium through Playwright's sync API; each navigation in a fresh context (a first visit)."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)

    def title_visible_s(self, url: str, title: str, timeout_s: float = 60.0) -> float:
        """Seconds from navigation start to the page's <h1> title text being visible."""
        context = self._browser.new_context()
        try:
            page = context.new_page()
            started = time.perf_counter()
            page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
            page.locator("h1", has_text=title).first.wait_for(state="visible", timeout=timeout_s * 1000)
            return time.perf_counter() - started
        finally:
            context.close()

    def close(self) -> None:
        self._browser.close()
        self._playwright.stop()


@dataclass(frozen=True)
class Memory:
    gateway_rss_mib: float
    tree_rss_mib: float
    tree_pss_mib: float
    processes: int


def memory(gateway: psutil.Process, tree: Iterable[psutil.Process]) -> Memory:
    rss = pss = 0
    count = 0
    for process in tree:
        try:
            info = process.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
        count += 1
    return Memory(gateway.memory_info().rss / 2**20, rss / 2**20, pss / 2**20, count)


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def _busy_seconds() -> tuple[float, float]:
    """(busy CPU seconds on all cores excluding softirq, softirq seconds) from /proc/stat."""
    fields = [int(n) for n in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + steal) / CLK_TCK, softirq / CLK_TCK


def _tree_cpu(root: psutil.Process) -> dict[tuple[int, float], float]:
    """CPU seconds (own and reaped children's) of `root` and every live descendant, keyed by (pid, start)."""
    seen: dict[tuple[int, float], float] = {}
    for process in [root, *root.children(recursive=True)]:
        try:
            with process.oneshot():
                times = process.cpu_times()
                key = (process.pid, process.create_time())
        except psutil.Error:
            continue
        seen[key] = times.user + times.system + times.children_user + times.children_system
    return seen


class NoiseMeter:
    """CPU time the rest of the machine used while we measured: /proc/stat busy time minus our process tree.

    Our tree is this driver and everything it started (servers, Streamlit children, wrk, Chromium). Processes
    that start and end between two readings count through their parent's children-times once reaped.
    Approximate: a process of ours that dies unreaped between readings is counted as "other".
    """

    def __init__(self) -> None:
        self._me = psutil.Process()
        self.reset()

    def reset(self) -> None:
        self._wall = time.monotonic()
        self._busy, self._softirq = _busy_seconds()
        self._ours = _tree_cpu(self._me)

    def read(self) -> dict[str, float]:
        wall = time.monotonic() - self._wall
        busy, softirq = _busy_seconds()
        now = _tree_cpu(self._me)
        ours = sum(value - self._ours.get(key, 0.0) for key, value in now.items())
        busy -= self._busy
        others = max(0.0, busy - ours)
        return {
            "wall_s": wall,
            "busy_cpu_s": busy,
            "ours_cpu_s": ours,
            "others_cpu_s": others,
            "others_pct_of_machine": 100 * others / (wall * (os.cpu_count() or 1)) if wall else 0.0,
            "softirq_cpu_s": softirq - self._softirq,
            "load1": loadavg()[0],
        }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, Any]:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_total = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")), 0)
    return {"nproc": os.cpu_count(), "cpu": model, "mem_gib": round(mem_total / 2**20, 1), "kernel": os.uname().release}
