"""Full-stack bench (issue 9): ours vs fluxlit 0.13.2 vs plain Streamlit, FastAPI-on-hypercorn and nginx.

    /work/venv/bin/python bench/fullstack.py [--quick] [--only api,static,...] [--rounds 3]

Every target runs on a free loopback port on this machine, alongside the load generator, so only figures
measured in the same run compare: targets are measured interleaved within each round (the order reversed
every other round), each figure is the median of the rounds, and each ratio is the median of the per-round
ratios. Machine noise (load average, CPU used by other processes) is reported with the figures. Writes
bench/results/fullstack-<date>.md (and the raw samples as .json) and prints the Markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "apps"))

import fullstack_probes as probes  # noqa: E402
import fullstack_targets as targets  # noqa: E402
from bench_routes import PAGE_TITLE  # noqa: E402

METRICS = ("cold", "api", "static", "ws", "rerun", "browser", "rss")
RESULTS = HERE / "results"
API_ROUTES = (("sync", "/api/sync"), ("async", "/api/async"), ("64 KiB", "/api/large"))
API_CONCURRENCY = (1, 32)
STATIC_CONCURRENCY = 8
# What each metric needs running; "cold" starts and stops its own processes.
NEEDS = {
    "api": ("ours", "reference", "fastapi"),
    "static": ("ours", "reference", "streamlit", "nginx", "nginx-stock"),
    "ws": ("ours", "reference", "streamlit"),
    "rerun": ("ours", "reference", "streamlit"),
    "browser": ("ours", "reference", "streamlit"),
    "rss": ("ours", "reference", "streamlit"),
}


@dataclass(frozen=True)
class Plan:
    """How much of everything one run does."""

    rounds: int = 3
    wrk_seconds: float = 5.0
    warmup_seconds: float = 1.0
    cold_starts: int = 5
    handshakes: int = 200
    reruns: int = 30
    browser_samples: int = 5
    budget_s: float = 1800.0

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            rounds=1, wrk_seconds=1.0, warmup_seconds=1.0, cold_starts=1, handshakes=20, reruns=5, browser_samples=1
        )


@dataclass
class Samples:
    """Per-round figures: key (metric row) -> target -> one value per round (or per start, for cold starts)."""

    values: dict[str, dict[str, list[float]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    notes: list[str] = field(default_factory=list)

    def add(self, key: str, target: str, value: float) -> None:
        self.values[key][target].append(value)

    def median(self, key: str, target: str) -> float:
        return probes.median(self.values.get(key, {}).get(target, []))

    def ratio(self, key: str, top: str, bottom: str) -> float:
        """Median of per-round ratios (rounds pair up because targets were measured interleaved)."""
        row = self.values.get(key, {})
        pairs = [a / b for a, b in zip(row.get(top, []), row.get(bottom, []), strict=False) if b]
        return probes.median(pairs)

    def spread(self, key: str, target: str) -> float:
        """Half the min-max range as a fraction of the median: how much the rounds disagreed."""
        values = self.values.get(key, {}).get(target, [])
        if len(values) < 2:
            return float("nan")
        return (max(values) - min(values)) / 2 / statistics.median(values)


def ordered(names: Sequence[str], round_index: int) -> list[str]:
    """A B C in even rounds, C B A in odd ones: a drift in machine load hits every target alike."""
    return list(names) if round_index % 2 == 0 else list(reversed(names))


def static_bundle() -> str:
    """URL path of the largest JS bundle Streamlit's index.html loads at page start (~861 KB protobuf bundle).

    The largest file in static/js overall is Plotly (~4.7 MB), fetched only by pages with charts; the bundle
    every page load pays for is the one the issue's ~860 KB figure names.
    """
    import re

    import streamlit

    static = Path(streamlit.__file__).parent / "static"
    index = (static / "index.html").read_text()
    loaded = re.findall(r'(?:src|href)="\./(static/js/[^"]+\.js)"', index)
    if not loaded:
        raise SystemExit(f"no static/js bundle named in {static / 'index.html'}")
    largest = max(loaded, key=lambda rel: (static / rel).stat().st_size)
    return "/" + largest


# ---------------------------------------------------------------------------------------------- phases


def measure_cold_starts(plan: Plan, workdir: Path, samples: Samples) -> None:
    """Start, wait for the ready path, stop; one unmeasured start each first (warms the page cache)."""
    makers: dict[str, Callable[[Path], targets.Target]] = {
        "ours": targets.ours,
        "reference": targets.reference,
        "streamlit": targets.streamlit_direct,
    }
    for index in range(plan.cold_starts + 1):
        for name in ordered(list(makers), index):
            target = makers[name](workdir).start()
            try:
                seconds = target.wait_ready()
            finally:
                target.stop()
            if index:
                samples.add("cold start -> ready", name, seconds)
            print(f"  cold start {name}: {seconds:.3f} s{'' if index else ' (warm-up, not counted)'}", flush=True)


def measure_api(plan: Plan, running: dict[str, Any], samples: Samples, round_index: int) -> None:
    names = [n for n in NEEDS["api"] if n in running]
    for label, path in API_ROUTES:
        for conns in API_CONCURRENCY:
            for name in ordered(names, round_index):
                target = running[name]
                result = probes.load_with_cpu(target.base + path, conns, plan.wrk_seconds, target.gateway())
                samples.add(f"{label} c={conns} req/s", name, result["rps"])
                samples.add(f"{label} c={conns} server CPU us/req", name, result["cpu_us_per_req"])
                samples.add(f"{label} c={conns} p50 ms", name, result["p50"])
                samples.add(f"{label} c={conns} p99 ms", name, result["p99"])
                print(f"  {label:>6} c={conns:<2} {name:<9} {result['rps']:>9,.0f} req/s  "
                      f"p50 {result['p50']:.2f} ms  p99 {result['p99']:.2f} ms  "
                      f"CPU {result['cpu_us_per_req']:.0f} us/req", flush=True)  # fmt: skip


def measure_static(plan: Plan, running: dict[str, Any], samples: Samples, round_index: int, path: str) -> None:
    names = [n for n in NEEDS["static"] if n in running]
    for name in ordered(names, round_index):
        target = running[name]
        result = probes.load_with_cpu(target.base + path, STATIC_CONCURRENCY, plan.wrk_seconds, target.gateway())
        samples.add("static JS req/s", name, result["rps"])
        samples.add("static JS MB/s", name, result["mbps"])
        samples.add("static JS front CPU us/req", name, result["cpu_us_per_req"])
        print(f"  static {name:<11} {result['rps']:>7,.0f} req/s {result['mbps']:>8.1f} MB/s "
              f"CPU {result['cpu_us_per_req']:.0f} us/req", flush=True)  # fmt: skip


def measure_ws(plan: Plan, running: dict[str, Any], samples: Samples, round_index: int) -> None:
    """Handshakes interleaved one by one across targets; the round's figure is each target's median."""
    names = [n for n in NEEDS["ws"] if n in running]
    per_target: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up: the first handshakes open pools and caches
        for _ in range(5):
            probes.ws_handshake_ms(running[name].base)
    for index in range(plan.handshakes):
        for name in ordered(names, round_index + index):
            per_target[name].append(probes.ws_handshake_ms(running[name].base))
    for name, values in per_target.items():
        samples.add("WS handshake ms", name, statistics.median(values))
        print(f"  ws handshake {name:<9} median {statistics.median(values):.3f} ms "
              f"(p90 {sorted(values)[int(len(values) * 0.9)]:.3f} ms, n={len(values)})", flush=True)  # fmt: skip


def measure_rerun(plan: Plan, running: dict[str, Any], samples: Samples, round_index: int) -> None:
    names = [n for n in NEEDS["rerun"] if n in running]
    sessions = {name: probes.RerunSession(running[name].base) for name in names}
    try:
        per_target: dict[str, list[float]] = {name: [] for name in names}
        for index in range(plan.reruns):
            for name in ordered(names, round_index + index):
                per_target[name].append(sessions[name].rerun_ms())
    finally:
        for session in sessions.values():
            session.close()
    for name, values in per_target.items():
        samples.add("rerun round trip ms", name, statistics.median(values))
        print(f"  rerun {name:<9} median {statistics.median(values):.2f} ms (n={len(values)})", flush=True)


def measure_browser(
    plan: Plan, running: dict[str, Any], samples: Samples, round_index: int, browser: probes.Browser
) -> None:
    names = [n for n in NEEDS["browser"] if n in running]
    per_target: dict[str, list[float]] = {name: [] for name in names}
    for index in range(plan.browser_samples):
        for name in ordered(names, round_index + index):
            per_target[name].append(browser.title_visible_s(running[name].base + "/", PAGE_TITLE))
    for name, values in per_target.items():
        samples.add("browser -> title visible s", name, statistics.median(values))
        shown = [round(v, 3) for v in values]
        print(f"  browser {name:<9} median {statistics.median(values):.3f} s {shown}", flush=True)


def measure_memory(running: dict[str, Any], samples: Samples, when: str) -> None:
    for name in ("ours", "reference", "streamlit"):
        if name not in running:
            continue
        target = running[name]
        mem = probes.memory(target.gateway(), target.tree())
        samples.add(f"gateway RSS {when} MiB", name, mem.gateway_rss_mib)
        samples.add(f"tree RSS {when} MiB", name, mem.tree_rss_mib)
        samples.add(f"tree PSS {when} MiB", name, mem.tree_pss_mib)
        print(f"  memory {when} {name:<9} gateway {mem.gateway_rss_mib:.1f} MiB, tree {mem.tree_rss_mib:.1f} MiB RSS "
              f"/ {mem.tree_pss_mib:.1f} MiB PSS in {mem.processes} processes", flush=True)  # fmt: skip


# ---------------------------------------------------------------------------------------------- running


@contextlib.contextmanager
def running_targets(names: set[str], workdir: Path) -> Generator[dict[str, Any], None, None]:
    """Start what the chosen metrics need (Streamlit before the nginx in front of it); stop all by PID."""
    started: dict[str, Any] = {}
    makers = {
        "ours": targets.ours,
        "reference": targets.reference,
        "streamlit": targets.streamlit_direct,
        "fastapi": targets.plain_fastapi,
    }
    try:
        if names & {"nginx", "nginx-stock"}:
            names = names | {"streamlit"}
        for name in ("ours", "reference", "streamlit", "fastapi"):
            if name in names:
                started[name] = makers[name](workdir).start()
        for name, target in started.items():
            print(f"  {name} ready in {target.wait_ready():.2f} s on {target.base}", flush=True)
        if "nginx" in names:
            started["nginx"] = targets.NginxTarget(workdir, started["streamlit"]).start()
        if "nginx-stock" in names:
            started["nginx-stock"] = targets.StockNginx(workdir, started["streamlit"]).start()
        yield started
    finally:
        for name, target in reversed(list(started.items())):
            try:
                target.stop()
            except Exception as error:  # keep stopping the rest
                print(f"  stopping {name} failed: {error}", file=sys.stderr)


def check_targets_answer(running: dict[str, Any], static_path: str | None) -> None:
    """Before any load: every route answers 200 with the expected body through every target."""
    with httpx.Client(timeout=10) as client:
        for name, target in running.items():
            if name in NEEDS["api"] and name in ("ours", "reference", "fastapi"):
                large = client.get(target.base + "/api/large")
                assert large.status_code == 200, (name, large.status_code)
                assert len(large.content) > 60_000, (name, len(large.content))
                for _, path in API_ROUTES[:2]:
                    assert client.get(target.base + path).status_code == 200, (name, path)
            if static_path and name in NEEDS["static"]:
                bundle = client.get(target.base + static_path)
                assert bundle.status_code == 200, (name, bundle.status_code)
                assert len(bundle.content) > 500_000, (name, len(bundle.content))
                assert "content-encoding" not in bundle.headers, (name, bundle.headers)
            if name in ("ours", "reference", "streamlit"):
                probes.RerunSession(target.base).close()  # the page runs without an exception


def wait_for_quiet(threshold: float, max_wait: float) -> str:
    started = time.monotonic()
    while probes.loadavg()[0] >= threshold and time.monotonic() - started < max_wait:
        time.sleep(10)
    load1 = probes.loadavg()[0]
    waited = time.monotonic() - started
    if load1 < threshold:
        return f"started at load1 {load1:.2f} after waiting {waited:.0f} s for it to fall below {threshold:g}"
    return f"load1 still {load1:.2f} (>= {threshold:g}) after waiting {waited:.0f} s: ran anyway"


def run(plan: Plan, metrics: set[str], workdir: Path, wait_note: str) -> dict[str, Any]:
    samples = Samples()
    noise_rows: list[dict[str, float | str]] = []
    meter = probes.NoiseMeter()
    started = time.monotonic()
    static_path = static_bundle() if "static" in metrics else None
    if "cold" in metrics:
        print("cold starts", flush=True)
        meter.reset()
        measure_cold_starts(plan, workdir, samples)
        noise_rows.append({"phase": "cold starts", **meter.read()})
    needed = {name for metric in metrics for name in NEEDS.get(metric, ())}
    if needed:
        print("starting " + ", ".join(sorted(needed)), flush=True)
        with running_targets(needed, workdir) as running:
            check_targets_answer(running, static_path)
            time.sleep(2.0)  # let start-up work settle before the idle reading
            if "rss" in metrics:
                measure_memory(running, samples, "idle")
            if "api" in metrics or "static" in metrics:
                for name, target in running.items():  # warm-up, not counted
                    if "api" in metrics and name in NEEDS["api"]:
                        for _, path in API_ROUTES:
                            probes.run_wrk(target.base + path, 32, plan.warmup_seconds)
                    if static_path and name in NEEDS["static"]:
                        probes.run_wrk(target.base + static_path, STATIC_CONCURRENCY, plan.warmup_seconds)
            browser = probes.Browser() if "browser" in metrics else None
            try:
                if browser is not None:  # one unmeasured first visit each: Streamlit's first run, caches
                    for name in NEEDS["browser"]:
                        browser.title_visible_s(running[name].base + "/", PAGE_TITLE)
                for round_index in range(plan.rounds):
                    if round_index and time.monotonic() - started > plan.budget_s:
                        samples.notes.append(
                            f"time budget {plan.budget_s:.0f} s reached: stopped after {round_index} rounds"
                        )
                        break
                    print(f"round {round_index + 1}/{plan.rounds} (load1 {probes.loadavg()[0]:.2f})", flush=True)
                    meter.reset()
                    if "api" in metrics:
                        measure_api(plan, running, samples, round_index)
                    if static_path:
                        measure_static(plan, running, samples, round_index, static_path)
                    if "ws" in metrics:
                        measure_ws(plan, running, samples, round_index)
                    if "rerun" in metrics:
                        measure_rerun(plan, running, samples, round_index)
                    if browser is not None:
                        measure_browser(plan, running, samples, round_index, browser)
                    noise_rows.append({"phase": f"round {round_index + 1}", **meter.read()})
            finally:
                if browser is not None:
                    browser.close()
            if "rss" in metrics:
                measure_memory(running, samples, "after load")
    return {
        "samples": {key: dict(row) for key, row in samples.values.items()},
        "notes": [*samples.notes, wait_note],
        "noise": noise_rows,
        "static_path": static_path,
        "elapsed_s": time.monotonic() - started,
        "samples_obj": samples,
    }


# ---------------------------------------------------------------------------------------------- report


def fmt(value: float, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit in ("req/s", "us"):
        return f"{value:,.0f}"
    if unit == "MiB" or unit == "MB/s":
        return f"{value:,.1f}"
    if unit == "ms":
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return f"{value:.3f}"


def cell(samples: Samples, key: str, target: str, unit: str) -> str:
    value = samples.median(key, target)
    spread = samples.spread(key, target)
    text = fmt(value, unit)
    return text + (f" ±{spread * 100:.0f}%" if not math.isnan(spread) else "")


def ratio_cell(samples: Samples, key: str, top: str, bottom: str) -> str:
    value = samples.ratio(key, top, bottom)
    return "-" if math.isnan(value) else f"{value:.2f}x"


def table(
    samples: Samples, title: str, rows: Sequence[tuple[str, str]], columns: Sequence[str], ratios: Sequence[str]
) -> list[str]:
    present = [key for key, _ in rows if key in samples.values]
    if not present:
        return []
    head = ["figure", *columns, *(f"ours/{r}" for r in ratios)]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, unit in rows:
        if key not in samples.values:
            continue
        values = [cell(samples, key, c, unit) for c in columns]
        lines.append(
            f"| {key} | "
            + " | ".join(values)
            + " | "
            + " | ".join(ratio_cell(samples, key, "ours", r) for r in ratios)
            + " |"
        )
    return [*lines, ""]


@dataclass(frozen=True)
class Goal:
    """One row of issue 9's target table, checked against this run's figures."""

    metric: str
    reference_then: str
    target: str
    check: Callable[[Samples], tuple[str, bool | None]]


def _goal_ratio(key: str, bottom: str, limit: float, higher: bool) -> Callable[[Samples], tuple[str, bool | None]]:
    def check(samples: Samples) -> tuple[str, bool | None]:
        value = samples.ratio(key, "ours", bottom)
        if math.isnan(value):
            return "not measured", None
        return f"{value:.2f}x {bottom}", value >= limit if higher else value <= limit

    return check


def _goal_static(samples: Samples) -> tuple[str, bool | None]:
    direct = samples.ratio("static JS MB/s", "ours", "streamlit")
    ref = samples.ratio("static JS MB/s", "ours", "reference")
    if math.isnan(direct) or math.isnan(ref):
        return "not measured", None
    return f"{direct:.2f}x direct, {ref:.2f}x reference", direct >= 0.9 and ref >= 1.25


def _goal_handshake(samples: Samples) -> tuple[str, bool | None]:
    row = samples.values.get("WS handshake ms", {})
    deltas = [a - b for a, b in zip(row.get("ours", []), row.get("streamlit", []), strict=False)]
    if not deltas:
        return "not measured", None
    delta = statistics.median(deltas)
    return (
        f"{samples.median('WS handshake ms', 'ours'):.3f} ms (direct "
        f"{samples.median('WS handshake ms', 'streamlit'):.3f} ms, +{delta:.3f} ms)",
        delta <= 0.3,
    )


def _goal_gateway_rss(samples: Samples) -> tuple[str, bool | None]:
    value = samples.median("gateway RSS after load MiB", "ours")
    if math.isnan(value):
        return "not measured", None
    return f"{value:.1f} MiB", value <= 60


GOALS = (
    Goal("cold start -> ready", "0.77 s", "<= 0.8x reference",
         _goal_ratio("cold start -> ready", "reference", 0.8, False)),
    Goal("async API route, c=32", "13,000 req/s", ">= 0.9x plain FastAPI on hypercorn",
         _goal_ratio("async c=32 req/s", "fastapi", 0.9, True)),
    Goal("sync API route, c=32", "5,100 req/s", ">= 0.9x plain FastAPI on hypercorn",
         _goal_ratio("sync c=32 req/s", "fastapi", 0.9, True)),
    Goal("860 KB static JS through the gateway", "0.7x direct Streamlit", ">= 0.9x direct, >= 1.25x reference",
         _goal_static),
    Goal("WS handshake", "1.8 ms (direct 0.95 ms)", "<= direct + 0.3 ms", _goal_handshake),
    Goal("gateway process RSS warm", "125 MiB", "<= 60 MiB", _goal_gateway_rss),
    Goal("whole tree RSS warm", "243 MiB", "<= 0.75x reference",
         _goal_ratio("tree RSS after load MiB", "reference", 0.75, False)),
    Goal("browser to title visible", "~1.0 s", "<= 1.05x direct",
         _goal_ratio("browser -> title visible s", "streamlit", 1.05, False)),
)  # fmt: skip


def report(result: dict[str, Any], plan: Plan, args: argparse.Namespace, stamp: str) -> str:
    samples: Samples = result["samples_obj"]
    info = probes.machine()
    vers = targets.versions()
    lines = [
        f"# Full-stack bench, {stamp}",
        "",
        f"Machine: {info['nproc']} cores, {info['cpu']}, {info['mem_gib']} GiB, Linux {info['kernel']}. "
        "The load generator (wrk, Chromium) shares these cores with every server.",
        "",
        "Versions: " + "; ".join(f"{k} {v}" for k, v in vers.items()) + ".",
        "",
        f"Plan: {plan.rounds} round(s), wrk {plan.wrk_seconds:g} s per run, {plan.cold_starts} cold starts, "
        f"{plan.handshakes} WS handshakes and {plan.reruns} reruns per target per round, "
        f"{plan.browser_samples} browser navigations per target per round"
        + (" (--quick)" if args.quick else "")
        + (f"; only {', '.join(sorted(args.only_set))}" if args.only else "")
        + f". Elapsed {result['elapsed_s']:.0f} s.",
        "",
        "Each figure is the median over rounds (cold start: over starts) with ± half the min-max range; each "
        "ratio is the median of per-round ratios. Lower is better for s, ms, us and MiB; higher for req/s and "
        "MB/s. `server CPU us/req` is the CPU time of the serving process (the gateway; for fastapi the hypercorn "
        "worker; for nginx its worker; for streamlit Streamlit itself) divided by the requests wrk completed: far "
        "less sensitive to other load on the machine than req/s.",
        "",
    ]
    for note in result["notes"]:
        lines.append(f"- {note}")
    lines.append("")
    lines += table(samples, "Cold start to ready (s): /api/readyz 200; Streamlit alone: /_stcore/health",
                   [("cold start -> ready", "s")], ["ours", "reference", "streamlit"],
                   ["reference", "streamlit"])  # fmt: skip
    api_rows = [
        (f"{label} c={c} {stat}", unit)
        for label, _ in API_ROUTES
        for c in API_CONCURRENCY
        for stat, unit in (("req/s", "req/s"), ("p50 ms", "ms"), ("p99 ms", "ms"), ("server CPU us/req", "us"))
    ]
    lines += table(samples, "API routes (wrk --latency; fastapi = the same routes on hypercorn alone)", api_rows,
                   ["ours", "reference", "fastapi"], ["reference", "fastapi"])  # fmt: skip
    lines += table(
        samples,
        f"Static JS bundle `{result['static_path']}` at c={STATIC_CONCURRENCY} (streamlit = direct; nginx = "
        "deploy/nginx/fluxlit-root.conf, nginx-stock = a minimal keep-alive proxy config, both in front of the "
        "same Streamlit)",
        [("static JS req/s", "req/s"), ("static JS MB/s", "MB/s"), ("static JS front CPU us/req", "us")],
        ["ours", "reference", "nginx", "nginx-stock", "streamlit"],
        ["reference", "streamlit"],
    )
    if "static JS MB/s" in samples.values:
        lines += [
            f"nginx/streamlit MB/s: {ratio_cell(samples, 'static JS MB/s', 'nginx', 'streamlit')}; "
            f"nginx-stock/streamlit: {ratio_cell(samples, 'static JS MB/s', 'nginx-stock', 'streamlit')}",
            "",
        ]
    lines += table(samples, "Streamlit WebSocket `/_stcore/stream` (medians per round)",
                   [("WS handshake ms", "ms"), ("rerun round trip ms", "ms")],
                   ["ours", "reference", "streamlit"], ["reference", "streamlit"])  # fmt: skip
    mem_rows = [
        (f"{what} {when} MiB", "MiB")
        for what in ("gateway RSS", "tree RSS", "tree PSS")
        for when in ("idle", "after load")
    ]
    lines += table(samples, "Memory (psutil; gateway = the process listening on the public port; tree = it and "
                   "all descendants; streamlit = Streamlit alone)", mem_rows, ["ours", "reference", "streamlit"],
                   ["reference"])  # fmt: skip
    lines += table(samples, "Headless Chromium: navigation start -> <h1> title visible (fresh context each)",
                   [("browser -> title visible s", "s")], ["ours", "reference", "streamlit"],
                   ["reference", "streamlit"])  # fmt: skip
    lines += ["### Issue 9 targets", "", "| metric | reference (earlier) | target | this run | met |"]
    lines.append("|---|---|---|---|---|")
    for goal in GOALS:
        shown, met = goal.check(samples)
        verdict = "-" if met is None else ("met" if met else "**not met**")
        lines.append(f"| {goal.metric} | {goal.reference_then} | {goal.target} | {shown} | {verdict} |")
    lines += [
        "",
        "### Machine noise",
        "",
        "others = CPU seconds used by processes outside this bench's tree (/proc/stat busy time minus ours); "
        "softirq is mostly our own loopback traffic. Approximate: the kernel may charge some softirq time to our "
        "processes, so 0.0 means nothing measurable.",
        "",
        "| phase | wall s | load1 at end | busy CPU s | ours CPU s | others CPU s | others % of machine | softirq s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["noise"]:
        lines.append(
            f"| {row['phase']} | {row['wall_s']:.0f} | {row['load1']:.2f} | {row['busy_cpu_s']:.1f} | "
            f"{row['ours_cpu_s']:.1f} | {row['others_cpu_s']:.1f} | {row['others_pct_of_machine']:.1f}% | "
            f"{row['softirq_cpu_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round, short runs: a smoke test of the driver")
    parser.add_argument("--only", action="append", default=[], help=f"comma list of {', '.join(METRICS)}")
    parser.add_argument("--rounds", type=int, help="rounds of interleaved measurement (default 3)")
    parser.add_argument("--seconds", type=float, help="duration of each wrk run (default 5)")
    parser.add_argument("--budget", type=float, default=1800.0, help="no new round starts after this many seconds")
    parser.add_argument("--wait-load", type=float, default=1.0, help="wait for load1 below this before starting")
    parser.add_argument("--wait-max", type=float, help="seconds to wait for it (default 300; 0 with --quick)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the .md and .json results")
    args = parser.parse_args(argv)
    args.only_set = {m.strip() for chunk in args.only for m in chunk.split(",") if m.strip()} or set(METRICS)
    unknown = args.only_set - set(METRICS)
    if unknown:
        parser.error(f"--only {', '.join(sorted(unknown))}: not a metric; choose from {', '.join(METRICS)}")
    plan = Plan.quick() if args.quick else Plan()
    overrides: dict[str, Any] = {"budget_s": args.budget}
    if args.rounds:
        overrides["rounds"] = args.rounds
    if args.seconds:
        overrides["wrk_seconds"] = args.seconds
    plan = Plan(**{**plan.__dict__, **overrides})

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks that stop every target
    targets.ensure_reference_venv()
    wait_max = args.wait_max if args.wait_max is not None else (0.0 if args.quick else 300.0)
    wait_note = wait_for_quiet(args.wait_load, wait_max)
    print(wait_note, flush=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M")
    with tempfile.TemporaryDirectory(prefix="fluxlit-fullstack-") as workdir:
        result = run(plan, args.only_set, Path(workdir), wait_note)
    text = report(result, plan, args, stamp)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    md = args.out / f"fullstack-{stamp}{suffix}.md"
    md.write_text(text)
    raw = {k: v for k, v in result.items() if k != "samples_obj"}
    md.with_suffix(".json").write_text(json.dumps(raw, indent=2, default=str))
    print()
    print(text)
    print(f"written to {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
