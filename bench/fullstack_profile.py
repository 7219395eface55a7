"""Where our gateway spends its CPU (py-spy) or memory (smaps) under one full-stack bench load.

    /work/venv/bin/python bench/fullstack_profile.py {api-sync,api-async,api-large,static,ws,browser,cold,rss}
        [--seconds 5] [--against fastapi]

Starts `fluxlit serve` on the bench app (and, with --against fastapi, the same routes on hypercorn alone under
the same load), samples the gateway process with `py-spy record --format raw` while the load runs, and
prints CPU milliseconds per request, the share of samples per package (self and inclusive) and the hottest
functions. `cold` records the whole start-up of both processes (gateway and Streamlit child) until ready;
`rss` breaks the gateway's resident memory down by mapping and shows which packages a gateway imports.
With --ablate (HTTP loads only) no profiler runs: ours by default, without its access log lines
(--log-level warning), without metrics (--no-metrics) and without both are measured interleaved against
FastAPI on hypercorn alone, for the CPU per request each of those features costs.
Needs py-spy in the venv (`pip install py-spy`).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "apps"))

import fullstack_probes as probes  # noqa: E402
import fullstack_targets as targets  # noqa: E402
from bench_routes import PAGE_TITLE  # noqa: E402

PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
UNIT = {"ws": "handshake", "browser": "navigation"}
LOADS = {"api-sync": "/api/sync", "api-async": "/api/async", "api-large": "/api/large"}
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def package_of(path: str) -> str:
    """A frame's file -> the package it belongs to (site-packages/<pkg>, our top-level dirs, stdlib module)."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    root = str(targets.ROOT) + "/"
    if path.startswith(root):
        return path[len(root) :].split("/", 1)[0].removesuffix(".py")
    if "/lib/python3" in path:
        rest = path.split("/lib/python3", 1)[1].split("/", 1)[1]
        return "stdlib:" + rest.split("/", 1)[0].removesuffix(".py")
    return path or "?"


def summarize_raw(raw: Path, top: int = 18) -> list[str]:
    """py-spy raw (collapsed) stacks -> shares by package (self, inclusive) and hottest leaf functions."""
    total = 0
    self_pkg: collections.Counter[str] = collections.Counter()
    incl_pkg: collections.Counter[str] = collections.Counter()
    self_func: collections.Counter[str] = collections.Counter()
    incl_func: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame)
            func, file = (match.group("func"), match.group("file")) if match else (frame, "")
            frames.append((func, file))
        frames = [f for f in frames if not f[0].startswith("process ") and not f[0].startswith("thread ")]
        if not frames:
            continue
        leaf_func, leaf_file = frames[-1]
        self_pkg[package_of(leaf_file)] += count
        self_func[f"{leaf_func} ({package_of(leaf_file)}/{Path(leaf_file).name})"] += count
        for pkg in {package_of(file) for _, file in frames}:
            incl_pkg[pkg] += count
        for name in {f"{func} ({package_of(file)}/{Path(file).name})" for func, file in frames}:
            incl_func[name] += count
    if not total:
        return ["  (no samples)"]
    out = [f"  {total} samples"]
    shares = ", ".join(f"{p} {100 * c / total:.0f}%" for p, c in self_pkg.most_common(12))
    out.append("  self time by package:   " + shares)
    shares = ", ".join(f"{p} {100 * c / total:.0f}%" for p, c in incl_pkg.most_common(14))
    out.append("  inclusive by package:   " + shares)
    out.append("  hottest functions (self):")
    out += [f"    {100 * c / total:5.1f}%  {name}" for name, c in self_func.most_common(top)]
    out.append("  heaviest call paths (inclusive, ours and web stack):")
    ours = [(n, c) for n, c in incl_func.most_common() if any(k in n for k in ("(fluxlit/", "(proxy/", "(supervisor/",
            "(hypercorn/", "(starlette/", "(fastapi/", "(structlog/", "(h11/", "(wsproto/", "(anyio/"))]  # fmt: skip
    out += [f"    {100 * c / total:5.1f}%  {name}" for name, c in ours[:top]]
    return out


def record(pid: int, seconds: float, out: Path, extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PY_SPY, "record", "--pid", str(pid), "-d", str(int(seconds)), "-r", "250", "--nonblocking",
         "--gil", "--full-filenames", "-o", str(out), "--format", "raw", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def profile_load(name: str, target: Any, kind: str, seconds: float, workdir: Path) -> list[str]:
    """Run the load on `target` while py-spy samples its gateway; CPU per request from psutil."""
    gateway = target.gateway()
    raw = workdir / f"{name}-{kind}.txt"
    spy = record(gateway.pid, seconds, raw)
    time.sleep(0.5)  # py-spy attaches
    before = cpu_seconds(gateway)
    child_before = sum(cpu_seconds(p) for p in target.tree() if p.pid != gateway.pid)
    started = time.perf_counter()
    requests, what = drive(kind, target, seconds)
    wall = time.perf_counter() - started
    gateway_cpu = cpu_seconds(gateway) - before
    child_cpu = sum(cpu_seconds(p) for p in target.tree() if p.pid != gateway.pid) - child_before
    spy.wait(timeout=seconds + 60)
    lines = [
        f"{name} under {kind}: {what} in {wall:.1f} s; gateway CPU {gateway_cpu:.2f} s "
        f"({1000 * gateway_cpu / max(requests, 1):.3f} ms per {UNIT.get(kind, 'request')}, "
        f"{100 * gateway_cpu / wall:.0f}% of a core)"
        + (f"; Streamlit child CPU {child_cpu:.2f} s" if child_cpu else "")
    ]
    if spy.returncode != 0:
        lines.append(f"  py-spy failed: {spy.stderr.read().decode(errors='replace')[-500:] if spy.stderr else ''}")
    else:
        lines += summarize_raw(raw)
    return lines


def drive(kind: str, target: Any, seconds: float) -> tuple[int, str]:
    """Apply one bench load; (requests made, a description)."""
    if kind in LOADS:
        result = probes.run_wrk(target.base + LOADS[kind], 32, seconds)
        count = int(result["rps"] * round(seconds))
        return count, f"{result['rps']:,.0f} req/s at c=32"
    if kind == "static":
        from fullstack import STATIC_CONCURRENCY, static_bundle

        result = probes.run_wrk(target.base + static_bundle(), STATIC_CONCURRENCY, seconds)
        return int(result["rps"] * round(seconds)), f"{result['mbps']:.0f} MB/s at c={STATIC_CONCURRENCY}"
    if kind == "ws":
        samples = []
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            samples.append(probes.ws_handshake_ms(target.base))
        return len(samples), f"{len(samples)} handshakes, median {probes.median(samples):.3f} ms"
    if kind == "browser":
        browser = probes.Browser()
        try:
            samples = []
            stop = time.monotonic() + seconds
            while time.monotonic() < stop:
                samples.append(browser.title_visible_s(target.base + "/", PAGE_TITLE))
        finally:
            browser.close()
        return len(samples), f"{len(samples)} navigations, median {probes.median(samples):.3f} s"
    raise SystemExit(f"unknown load {kind!r}")


ABLATIONS = (
    ("ours (defaults)", ()),
    ("ours --log-level warning", ("--log-level", "warning")),
    ("ours --no-metrics", ("--no-metrics",)),
    ("ours, both", ("--log-level", "warning", "--no-metrics")),
)


def ablate(kind: str, seconds: float, rounds: int, workdir: Path) -> list[str]:
    """CPU per request (of the serving process) and req/s for ours with features off, and FastAPI alone."""
    from fullstack import STATIC_CONCURRENCY, static_bundle

    path = LOADS.get(kind) or static_bundle()
    conns = 32 if kind in LOADS else STATIC_CONCURRENCY
    running: dict[str, targets.Target] = {}
    for label, extra in ABLATIONS:
        target = targets.ours(workdir)
        target.argv = [*target.argv, *extra]
        running[label] = target
    if kind in LOADS:
        running["fastapi alone"] = targets.plain_fastapi(workdir)
    cpu: dict[str, list[float]] = collections.defaultdict(list)
    rps: dict[str, list[float]] = collections.defaultdict(list)
    try:
        for target in running.values():
            target.start()
        for target in running.values():
            target.wait_ready()
            probes.run_wrk(target.base + path, conns, 1)  # warm-up
        for index in range(rounds):
            names = list(running) if index % 2 == 0 else list(reversed(running))
            for name in names:
                target = running[name]
                result = probes.load_with_cpu(target.base + path, conns, seconds, target.gateway())
                cpu[name].append(result["cpu_us_per_req"])
                rps[name].append(result["rps"])
    finally:
        for target in running.values():
            target.stop()
    base = probes.median(cpu["ours (defaults)"])
    lines = [f"ablation under {kind} (c={conns}, {rounds} interleaved rounds of {seconds:g} s; medians):"]
    for name in running:
        c = probes.median(cpu[name])
        lines.append(
            f"  {name:<26} {c:7.0f} us CPU/req ({c - base:+5.0f} vs defaults)  {probes.median(rps[name]):8,.0f} req/s"
        )
    return lines


def profile_cold(workdir: Path) -> list[str]:
    """A timeline of one plain start, then py-spy over a whole start-up (gateway and Streamlit child)."""
    plain = targets.ours(workdir).start()
    try:
        ready = plain.wait_ready()
        timeline = gateway_timeline(plain.log(), plain.started_wall)
    finally:
        plain.stop()
    lines = [f"ours cold start without a profiler: ready after {ready:.3f} s; log events after the process started:"]
    lines += [f"  {line}" for line in timeline]
    return lines + profile_cold_sampled(workdir)


def profile_cold_sampled(workdir: Path) -> list[str]:
    raw = workdir / "cold.txt"
    target = targets.ours(workdir)
    target.argv = [PY_SPY, "record", "--subprocesses", "--full-filenames", "-r", "250", "-o", str(raw),
                   "--format", "raw", "--", *target.argv]  # fmt: skip
    target.start()
    try:
        ready = target.wait_ready()
        served = [p for p in target.tree() if "fluxlit" in " ".join(p.cmdline()) and "py-spy" not in p.name()]
        os.kill(served[0].pid, signal.SIGTERM)
        assert target.proc is not None
        target.proc.wait(timeout=60)
    finally:
        target.stop()
    lines = [f"ours cold start under py-spy (slower than without): ready after {ready:.2f} s"]
    return lines + summarize_raw(raw)


def gateway_timeline(log: str, started_wall: float) -> list[str]:
    """The distinct events of a `fluxlit serve` JSON log until it served, in seconds after the process started."""
    import json
    from datetime import datetime

    out = []
    seen: set[str] = set()
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        event, stamp = str(record.get("event", "")), record.get("timestamp")
        if not stamp or event in seen:
            continue
        seen.add(event)
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() - started_wall
        out.append(f"+{at:.3f} s {event[:90]}")
        if len(out) >= 10:
            break
    return out or ["(no timestamped JSON events in the log)"]


def smaps_breakdown(pid: int, top: int = 14) -> list[str]:
    """Resident memory of one process by mapping (file, [heap], anonymous), from /proc/<pid>/smaps."""
    by_name: collections.Counter[str] = collections.Counter()
    name = "?"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            path = head[5] if len(head) > 5 else "[anonymous]"
            name = package_of(path) if path.startswith("/") and ".so" in path else path
        elif line.startswith("Rss:"):
            by_name[name] += int(head[1])
    total = sum(by_name.values())
    out = [f"  RSS {total / 1024:.1f} MiB by mapping:"]
    out += [f"    {kib / 1024:6.1f} MiB  {name}" for name, kib in by_name.most_common(top)]
    return out


IMPORT_STEPS = """
import gc, os, sys, time
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
print(f"python alone: {rss():.1f} MiB, {len(sys.modules)} modules")
steps = [
    ("anyio, h11, wsproto", "import anyio, h11, wsproto"),
    ("hypercorn", "import hypercorn.asyncio, hypercorn.config"),
    ("structlog, logging setup", "import structlog"),
    ("fastapi, starlette, pydantic", "import fastapi"),
    (
        "fluxlit.runtime.serve_plan (gateway, proxy, supervisor)",
        "import fluxlit.runtime.serve_plan, fluxlit.gateway.router, fluxlit_proxy, fluxlit_supervisor",
    ),
    ("the bench app (load_target)", "from fluxlit.targets import load_target; load_target(%r)"),
]
for label, code in steps:
    before, n = rss(), len(sys.modules)
    exec(code)
    print(f"+ {label}: +{rss() - before:.1f} MiB, +{len(sys.modules) - n} modules")
tops = sorted({m.split('.')[0] for m in sys.modules})
print("streamlit imported in the gateway:", "streamlit" in sys.modules)
big = {}
for m in sys.modules:
    big[m.split('.')[0]] = big.get(m.split('.')[0], 0) + 1
ranked = sorted(big.items(), key=lambda kv: -kv[1])[:15]
print("modules per top-level package:", ", ".join(f"{k} {v}" for k, v in ranked))
"""


def profile_rss(workdir: Path, seconds: float) -> list[str]:
    target = targets.ours(workdir).start()
    try:
        target.wait_ready()
        gateway = target.gateway()
        lines = [f"ours gateway pid {gateway.pid}, idle"]
        lines += smaps_breakdown(gateway.pid)
        probes.run_wrk(target.base + "/api/async", 32, seconds)
        probes.run_wrk(target.base + "/api/large", 32, seconds)
        from fullstack import static_bundle

        probes.run_wrk(target.base + static_bundle(), 8, seconds)
        lines.append("after API and static load")
        lines += smaps_breakdown(gateway.pid)
        maps = Path(f"/proc/{gateway.pid}/maps").read_text()
        heavy = sorted({package_of(p) for p in re.findall(r"(/\S+\.so[.\d]*)", maps) if "site-packages" in p})
        lines.append("  site-packages with native code mapped in the gateway: " + ", ".join(heavy))
    finally:
        target.stop()
    steps = subprocess.run(
        [sys.executable, "-c", IMPORT_STEPS % targets.APP_TARGET],
        capture_output=True, text=True, cwd=targets.ROOT, timeout=120,
    )  # fmt: skip
    lines.append("import steps of a gateway, replayed in a fresh interpreter (RSS after each):")
    lines += [f"  {line}" for line in (steps.stdout + steps.stderr[-1500:]).splitlines()]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("load", choices=[*LOADS, "static", "ws", "browser", "cold", "rss"])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--ablate", action="store_true", help="CPU/request with ours' features off (no py-spy)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds for --ablate")
    parser.add_argument("--keep", type=Path, help="copy py-spy's raw stacks into this directory")
    parser.add_argument("--against", choices=["fastapi", "reference", "none"], default="none",
                        help="profile this target under the same load too")  # fmt: skip
    args = parser.parse_args()
    if not Path(PY_SPY).exists():
        raise SystemExit(f"py-spy not found at {PY_SPY}: {sys.executable} -m pip install py-spy")
    with tempfile.TemporaryDirectory(prefix="fluxlit-profile-") as tmp:
        workdir = Path(tmp)
        if args.ablate:
            lines = ablate(args.load, args.seconds, args.rounds, workdir)
        elif args.load == "cold":
            lines = profile_cold(workdir)
        elif args.load == "rss":
            lines = profile_rss(workdir, args.seconds)
        else:
            lines = []
            makers = {"fastapi": targets.plain_fastapi, "reference": targets.reference}
            chosen = [("ours", targets.ours)]
            if args.against in makers:
                chosen.append((args.against, makers[args.against]))
            for name, maker in chosen:
                target = maker(workdir).start()
                try:
                    target.wait_ready()
                    time.sleep(1.0)
                    if args.load in LOADS:
                        probes.run_wrk(target.base + LOADS[args.load], 32, 1)  # warm-up
                    lines += profile_load(name, target, args.load, args.seconds, workdir)
                finally:
                    target.stop()
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for raw in workdir.glob("*.txt"):
                shutil.copy(raw, args.keep / raw.name)
    print(f"load1 {probes.loadavg()[0]:.2f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
