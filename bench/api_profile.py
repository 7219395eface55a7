"""Issue 9 API rows, quickly: ours vs FastAPI on hypercorn alone under wrk, interleaved, with CPU per request.

    /work/venv/bin/python bench/api_profile.py load [--path /api/async] [--conns 32] [--seconds 10] [--rounds 3]
        [--variant NAME=KEY:VALUE,...] [--cli NAME=EXPR] [--no-baseline]
    /work/venv/bin/python bench/api_profile.py micro [--requests 20000]

`load` starts `fluxlit serve` on the bench app and the same routes on hypercorn alone (as bench/fullstack.py
does), warms both, then runs wrk A B A B ... (order reversed every other round) and prints, per run, req/s,
the serving process's CPU microseconds per request (utime + stime from /proc/PID/stat) and the load average;
then the medians and ratios. Each `--variant` adds one more `fluxlit serve` whose HYPERCORN_OPTIONS are
updated with the given values (e.g. `--variant incomplete1m=h11_max_incomplete_size:1048576`).

`micro` drives the gateway in-process (no sockets, no hypercorn) with a trivial ASGI API and prints the
CPU microseconds per request each layer adds (the minimum over rounds): dispatch, + metrics, + access line
(written to /dev/null).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "apps"))
sys.path.insert(0, str(HERE.parent))

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


GC_CODE = {
    # After the app is imported, just before serving: startup objects leave the collector's generations.
    "freeze": "import gc, fluxlit_supervisor as supervisor; _run = supervisor.run; "
    "supervisor.run = lambda *a, **k: (gc.collect(), gc.freeze(), _run(*a, **k))[2]; ",
    # Diagnostic only: what the cyclic collector costs per request at all.
    "off": "import gc; gc.disable(); ",
}


def variant_argv(base: list[str], options: dict[str, Any], gc_mode: str = "") -> list[str]:
    """`python -m fluxlit serve ...` with HYPERCORN_OPTIONS updated first (the serve plan reads them at plan time)."""
    code = (
        GC_CODE.get(gc_mode, "")
        + "import fluxlit.runtime.serve_plan as s; "
        + f"s.HYPERCORN_OPTIONS.update({options!r}); "
        + "from fluxlit.cli.main import main; main(prog_name='fluxlit')"
    )
    return [sys.executable, "-c", code, *base[3:]]


def parse_variant(text: str) -> tuple[str, dict[str, Any], list[str], str, str]:
    """NAME=ITEM,... where an ITEM is KEY:VALUE (a hypercorn option), arg:--flag (a CLI argument), gc:MODE or
    cwd:DIR (serve from another checkout)."""
    name, _, spec = text.partition("=")
    options: dict[str, Any] = {}
    extra: list[str] = []
    extra_cwd: list[str] = []
    gc_mode = ""
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition(":")
        if key == "arg":
            extra.append(value)
            continue
        if key == "gc":
            gc_mode = value
            continue
        if key == "cwd":  # another checkout of the repo (e.g. the code before a change), served from there
            extra_cwd.append(value)
            continue
        try:
            options[key] = int(value)
        except ValueError:
            try:
                options[key] = float(value)
            except ValueError:
                options[key] = {"None": None, "True": True, "False": False}.get(value, value)
    return name, options, extra, gc_mode, extra_cwd[-1] if extra_cwd else ""


def load(args: argparse.Namespace) -> None:
    import tempfile

    import fullstack_probes as probes
    import fullstack_targets as targets

    workdir = Path(tempfile.mkdtemp(prefix="api-profile-"))
    running: dict[str, targets.Target] = {"ours": targets.ours(workdir)}
    for text in args.variant:
        name, options, extra, gc_mode, cwd = parse_variant(text)
        target = targets.ours(workdir)
        target.name = name
        target.argv = [*variant_argv(target.argv, options, gc_mode), *extra]
        if cwd:
            target.cwd = Path(cwd)
        running[name] = target
    for text in args.cli:
        # An app from this module on the baseline's hypercorn CLI, e.g. gw=gateway_on_hypercorn(): our gateway
        # without the supervisor, or the baseline with one more layer.
        name, _, expression = text.partition("=")
        target = targets.plain_fastapi(workdir)
        target.name = name
        target.argv = [*target.argv[:-1], f"api_profile:{expression}"]
        target.cwd = HERE
        running[name] = target
    if not args.no_baseline:
        running["fastapi"] = targets.plain_fastapi(workdir)
    rps: dict[str, list[float]] = collections.defaultdict(list)
    cpu: dict[str, list[float]] = collections.defaultdict(list)
    try:
        for target in running.values():
            target.start()
        for target in running.values():
            target.wait_ready()
            probes.run_wrk(target.base + args.path, args.conns, 2)  # warm-up
        for index in range(args.rounds):
            names = list(running) if index % 2 == 0 else list(reversed(running))
            for name in names:
                target = running[name]
                pid = target.gateway().pid
                before = proc_cpu_s(pid)
                result = probes.run_wrk(target.base + args.path, args.conns, args.seconds)
                used = proc_cpu_s(pid) - before
                us = 1e6 * used / max(result["requests"], 1)
                rps[name].append(result["rps"])
                cpu[name].append(us)
                load1 = os.getloadavg()[0]
                print(
                    f"round {index + 1} {name:<12} {result['rps']:8,.0f} req/s  {us:5.0f} us CPU/req  "
                    f"p50 {result['p50']:.2f} ms  load1 {load1:.2f}",
                    flush=True,
                )
    finally:
        for target in running.values():
            target.stop()
    print(f"\n{args.path} c={args.conns}, {args.rounds} rounds of {args.seconds:g} s (medians, +- half range):")
    for name in running:
        r, c = rps[name], cpu[name]
        print(
            f"  {name:<12} {statistics.median(r):8,.0f} req/s +-{(max(r) - min(r)) / 2:5,.0f}   "
            f"{statistics.median(c):5.0f} us CPU/req +-{(max(c) - min(c)) / 2:3.0f}"
        )
    if "fastapi" in running:
        for name in running:
            if name == "fastapi":
                continue
            ratios = [a / b for a, b in zip(rps[name], rps["fastapi"], strict=True)]
            cpu_ratios = [a / b for a, b in zip(cpu[name], cpu["fastapi"], strict=True)]
            per_round = ", ".join(f"{x:.2f}" for x in ratios)
            print(
                f"  {name}/fastapi: req/s {statistics.median(ratios):.2f}x (per-round {per_round}), "
                f"CPU/req {statistics.median(cpu_ratios):.2f}x"
            )


async def _drive(app: Any, requests: int) -> float:
    scope_base: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/async",
        "raw_path": b"/api/async",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    started = time.thread_time()  # CPU time: robust to other processes taking the core away
    for _ in range(requests):
        scope = dict(scope_base)
        scope["headers"] = list(headers)
        await app(scope, receive, send)
    return (time.thread_time() - started) / requests * 1e6


def micro(args: argparse.Namespace) -> None:
    from fluxlit.gateway.router import build_gateway
    from fluxlit.observability import logs
    from fluxlit.observability.access import AccessObserver
    from fluxlit.observability.metrics import GatewayMetrics

    body = b'{"status":"ok","kind":"async"}'
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}

    async def api(scope: Any, receive: Any, send: Any) -> None:
        await send(start)
        await send({"type": "http.response.body", "body": body})

    null = open(os.devnull, "w")  # noqa: SIM115 - lives for the whole run
    logs.configure_logging("info", "json", null)
    cases = {
        "bare api": api,
        "gateway, no observer": build_gateway(api),
        "gateway + access line": build_gateway(api, observer=AccessObserver(None)),
        "gateway + metrics": build_gateway(api, observer=AccessObserver(GatewayMetrics(), access_log=False)),
        "gateway + metrics + access line": build_gateway(api, observer=AccessObserver(GatewayMetrics())),
    }
    results: dict[str, list[float]] = collections.defaultdict(list)
    for _ in range(args.rounds):
        for name, app in cases.items():
            results[name].append(asyncio.run(_drive(app, args.requests)))
    # The minimum over rounds: noise on a shared machine only ever adds time.
    bare = min(results["bare api"])
    for name in cases:
        value = min(results[name])
        print(f"  {name:<34} {value:6.2f} us/req  (+{value - bare:5.2f} over the bare API)")


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
# (category, file substring, function prefix or ""): the first rule matching a frame, walking from the leaf up,
# takes the sample. Our send wrappers sit between FastAPI and hypercorn: their own time is ours, what they call is
# hypercorn's.
RULES = (
    ("logging: access line write", "fluxlit/observability/logs.py", ""),
    ("access observer: line fields", "fluxlit/observability/redaction.py", ""),
    ("access observer: line fields", "fluxlit/observability/access.py", "AccessObserver._line"),
    ("metrics", "prometheus_client/", ""),
    ("metrics", "fluxlit/observability/metrics.py", ""),
    ("request id", "/uuid.py", ""),
    ("request id", "fluxlit/gateway/request_id.py", ""),
    ("access observer: wrapper, timing", "fluxlit/observability/access.py", ""),
    ("gateway: header prep", "fluxlit/gateway/router.py", "_prepare_headers"),
    ("gateway: header prep", "fluxlit/config/forwarded.py", ""),
    ("gateway: response headers", "fluxlit/gateway/router.py", "_with_response_headers"),
    ("gateway: body deadline", "fluxlit/gateway/body_deadline.py", ""),
    ("gateway: refusals", "fluxlit/gateway/refusals.py", ""),
    ("gateway: refusals", "fluxlit/gateway/internal_access.py", ""),
    ("gateway: dispatch", "fluxlit/gateway/router.py", ""),
    ("gateway: dispatch", "fluxlit/config/paths.py", ""),
    ("supervisor wrapper", "supervisor/", ""),
    ("FastAPI/Starlette/pydantic", "fastapi/", ""),
    ("FastAPI/Starlette/pydantic", "starlette/", ""),
    ("FastAPI/Starlette/pydantic", "pydantic", ""),
    ("FastAPI/Starlette/pydantic", "opentelemetry", ""),
    ("hypercorn/h11", "hypercorn/", ""),
    ("hypercorn/h11", "h11/", ""),
    ("hypercorn/h11", "wsgiref/", ""),
    ("logging: other", "structlog/", ""),
    ("logging: other", "/logging/", ""),
    ("anyio", "anyio/", ""),
)


def attribute(args: argparse.Namespace) -> None:
    """Split py-spy raw stacks into the layers of one request, as shares and as microseconds per request."""
    for raw, us in zip(args.raw, args.us_per_req or [0.0] * len(args.raw), strict=False):
        shares: collections.Counter[str] = collections.Counter()
        total = 0
        for line in Path(raw).read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            total += count
            category = "event loop, other"
            for frame in reversed(stack.split(";")):
                match = _FRAME.match(frame)
                func, file = (match.group("func"), match.group("file")) if match else (frame, "")
                hit = next((c for c, part, fn in RULES if part in file and func.startswith(fn)), None)
                if hit is not None:
                    category = hit
                    break
            shares[category] += count
        print(f"{raw}: {total} samples" + (f", {us:.0f} us CPU/req" if us else ""))
        for category, count in shares.most_common():
            share = count / max(total, 1)
            print(f"  {category:<36} {100 * share:5.1f}%" + (f"  {share * us:6.1f} us/req" if us else ""))


def plain_with_stamped_headers() -> Any:
    """The baseline's FastAPI app with the two response headers our gateway adds (x-request-id, replica), added
    by the smallest possible ASGI wrapper: what those headers cost hypercorn and h11 alone."""
    from plain_api import app

    stamp = [(b"x-request-id", b"79fbc7fa3b8a47e28baf9a08e4cf5b4e"), (b"x-fluxlit-replica", b"bench-1")]

    async def stamped(scope: Any, receive: Any, send: Any) -> None:
        async def send_stamped(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], *stamp]}
            await send(message)

        await app(scope, receive, send_stamped)

    return stamped


def _time_access_lines(every: int = 20000) -> None:
    """Report to stderr the CPU time the fast access-line writer takes per line, in the serving process."""
    from fluxlit.observability import logs

    writer = logs._fast_lines
    assert writer is not None
    write = writer.write
    spent = [0.0, 0]

    def timed(event: str, logger_name: str, fields: dict[str, Any]) -> None:
        started = time.thread_time()
        write(event, logger_name, fields)
        spent[0] += time.thread_time() - started
        spent[1] += 1
        if spent[1] == every:
            sys.stderr.write(f"access line: {spent[0] / every * 1e6:.1f} us CPU per line over {every}\n")
            spent[:] = [0.0, 0]

    writer.write = timed  # type: ignore[method-assign]


def _batch_access_lines() -> None:
    """A prototype, not our behaviour: access lines rendered and written once per event-loop iteration."""
    from fluxlit.observability import logs

    writer = logs._fast_lines
    assert writer is not None
    write = writer.write
    pending: list[tuple[str, str, dict[str, Any]]] = []

    def flush() -> None:
        batch = pending[:]
        pending.clear()
        for item in batch:
            write(*item)

    def deferred(event: str, logger_name: str, fields: dict[str, Any]) -> None:
        if not pending:
            asyncio.get_running_loop().call_soon(flush)
        pending.append((event, logger_name, fields))

    writer.write = deferred  # type: ignore[method-assign]


def gateway_on_hypercorn(
    *,
    observer: bool = True,
    metrics: bool = True,
    access_log: bool = True,
    timed_log: bool = False,
    batched_log: bool = False,
) -> Any:
    """The bench app behind our gateway (access line to stdout, metrics, a replica id) without the supervisor:
    `hypercorn --worker-class uvloop 'api_profile:gateway_on_hypercorn()'` from bench/ (`load --gateway-cli`)."""
    from bench_app import app

    from fluxlit.config.settings import Settings
    from fluxlit.config.sources import replace
    from fluxlit.gateway.router import build_gateway
    from fluxlit.observability import logs
    from fluxlit.observability.access import AccessObserver
    from fluxlit.observability.metrics import GatewayMetrics

    logs.configure_logging("info", "json")
    logs.bind_process_fields(replica="bench-1")
    if timed_log:
        _time_access_lines()
    if batched_log:
        _batch_access_lines()
    registry = GatewayMetrics() if metrics else None
    settings = replace(Settings(), replica_id="bench-1")
    return build_gateway(
        app,
        settings,
        internal={"/__fluxlit/metrics": registry.endpoint()} if registry is not None else None,
        observer=AccessObserver(registry, access_log=access_log) if observer else None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_load = sub.add_parser("load")
    p_load.add_argument("--path", default="/api/async")
    p_load.add_argument("--conns", type=int, default=32)
    p_load.add_argument("--seconds", type=float, default=10)
    p_load.add_argument("--rounds", type=int, default=3)
    p_load.add_argument("--variant", action="append", default=[])
    p_load.add_argument("--no-baseline", action="store_true")
    p_load.add_argument("--cli", action="append", default=[], help="NAME=EXPR: api_profile:EXPR on hypercorn's CLI")
    p_micro = sub.add_parser("micro")
    p_micro.add_argument("--requests", type=int, default=20000)
    p_micro.add_argument("--rounds", type=int, default=5)
    p_attr = sub.add_parser("attribute")
    p_attr.add_argument("raw", nargs="+", help="py-spy record --format raw --full-filenames output")
    p_attr.add_argument("--us-per-req", type=float, action="append", help="CPU us/req of each, in order")
    args = parser.parse_args()
    {"load": load, "micro": micro, "attribute": attribute}[args.command](args)


if __name__ == "__main__":
    main()
