#!/usr/bin/env python3
"""Mixed soak against a running FluxLit: small and large API calls, a proxied static asset, WebSocket sessions and
Streamlit file uploads, optionally after pauses that leave the gateway's connections to Streamlit idle.

Reports failed requests, the gateway's resident memory growth after a warm-up, and its open descriptors.

Environment (all optional):
  BASE_URL            http://127.0.0.1:8000 (include the public mount, e.g. http://host/apps/demo)
  COUNT               100000 requests in all (a WebSocket session counts as one)
  CONCURRENCY         8 worker threads, each with one keep-alive connection
  WARMUP              requests before the baseline sample (default: COUNT // 10, at most 5000)
  MIX                 api_small=50,api_large=20,static=25,websocket=5 (relative weights; also upload=N)
  IDLE_PAUSES         0; N stops every worker N times (spread over the measured phase): the gateway's connections
                      to Streamlit idle for a random 0-IDLE_MAX_S (10) s pause, the same for all, then every worker
                      uploads a file at once (PUT /_stcore/upload_file/..., 204); these uploads count in COUNT
  API_PREFIX          /api;  LARGE_API_PATH: /openapi.json (below API_PREFIX)
  STATIC_PATH         a proxied asset below BASE_URL (default: the stylesheet the app's HTML shell names)
  METRICS_PATH        /__fluxlit/metrics, read for fluxlit_process_{resident_memory_bytes,open_fds}{process="gateway"}
  GATEWAY_PID         read /proc/<pid> instead of the metrics endpoint
  TIMEOUT_S           10 seconds per request;  SEED: 1 (the request mix is reproducible)
  MAX_RSS_GROWTH_PCT  5;  MAX_FD_GROWTH: 10
  OUTPUT_FORMAT       text or json
Exit status: 0 when nothing failed and growth stayed within bounds, 1 otherwise, 2 for a usage error.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import httpx
from soak_uploads import STREAMLIT_KEEP_ALIVE_S, IdlePauses, StreamlitUploader

KINDS = ("api_small", "api_large", "static", "websocket", "upload")
# Not a MIX kind: what the schedule hands every worker at an idle pause.
IDLE_THEN_UPLOAD = "idle_then_upload"


class UsageError(Exception):
    """A bad environment value; the message names it and says what would work."""


@dataclass(frozen=True)
class SoakConfig:
    """What one soak run does, read once from the environment."""

    base_url: str
    count: int
    concurrency: int
    warmup: int
    mix: dict[str, int]
    api_prefix: str
    large_api_path: str
    static_path: str
    metrics_path: str
    gateway_pid: int | None
    timeout_s: float
    seed: int
    max_rss_growth_pct: float
    max_fd_growth: int
    output_format: str
    idle_pauses: int = 0
    idle_max_s: float = 10.0

    @property
    def scheduled(self) -> int:
        """Requests in the mix; the rest of COUNT are the uploads after idle pauses."""
        return self.count - self.idle_pauses * self.concurrency


def _int(env: dict[str, str], name: str, default: int, minimum: int) -> int:
    text = env.get(name, str(default)).strip()
    if not text.isdigit() or int(text) < minimum:
        raise UsageError(f"{name}={text!r} must be a whole number of at least {minimum}, e.g. {default}")
    return int(text)


def _float(env: dict[str, str], name: str, default: float) -> float:
    text = env.get(name, str(default)).strip()
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} must be a number, e.g. {default}") from None
    if not value > 0:
        raise UsageError(f"{name}={text!r} must be more than 0, e.g. {default}")
    return value


def parse_mix(text: str) -> dict[str, int]:
    """'api_small=50,static=25' -> weights; unknown kinds and non-numbers are usage errors."""
    mix: dict[str, int] = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        kind, _, weight = item.partition("=")
        if kind.strip() not in KINDS or not weight.strip().isdigit():
            raise UsageError(f"MIX item {item!r} must be KIND=WEIGHT with KIND one of {', '.join(KINDS)}")
        mix[kind.strip()] = int(weight)
    if not any(mix.values()):
        raise UsageError(f"MIX={text!r} gives every kind weight 0: try api_small=50,api_large=20,static=25,websocket=5")
    return mix


def read_config(env: dict[str, str]) -> SoakConfig:
    base = env.get("BASE_URL", "http://127.0.0.1:8000").strip().rstrip("/")
    if urlsplit(base).scheme not in ("http", "https") or not urlsplit(base).netloc:
        raise UsageError(f"BASE_URL={base!r} must be an http(s) URL, e.g. http://127.0.0.1:8000")
    count = _int(env, "COUNT", 100000, 1)
    warmup = _int(env, "WARMUP", min(count // 10, 5000), 0)
    if warmup >= count:
        raise UsageError(f"WARMUP={warmup} must be below COUNT={count}")
    output = env.get("OUTPUT_FORMAT", "text").strip()
    if output not in ("text", "json"):
        raise UsageError(f"OUTPUT_FORMAT={output!r} must be text or json")
    pid = env.get("GATEWAY_PID", "").strip()
    if pid and not pid.isdigit():
        raise UsageError(f"GATEWAY_PID={pid!r} must be a process id")
    concurrency, idle_pauses = _int(env, "CONCURRENCY", 8, 1), _int(env, "IDLE_PAUSES", 0, 0)
    if count - idle_pauses * concurrency <= warmup:
        raise UsageError(
            f"IDLE_PAUSES={idle_pauses} x CONCURRENCY={concurrency} uploads leave no measured requests in "
            f"COUNT={count} after WARMUP={warmup}: raise COUNT or lower IDLE_PAUSES"
        )
    return SoakConfig(
        base_url=base,
        count=count,
        concurrency=concurrency,
        warmup=warmup,
        mix=parse_mix(env.get("MIX", "api_small=50,api_large=20,static=25,websocket=5")),
        api_prefix="/" + env.get("API_PREFIX", "/api").strip().strip("/"),
        large_api_path="/" + env.get("LARGE_API_PATH", "/openapi.json").strip().lstrip("/"),
        static_path=env.get("STATIC_PATH", "").strip().lstrip("/"),
        metrics_path="/" + env.get("METRICS_PATH", "/__fluxlit/metrics").strip().lstrip("/"),
        gateway_pid=int(pid) if pid else None,
        timeout_s=_float(env, "TIMEOUT_S", 10.0),
        seed=_int(env, "SEED", 1, 0),
        max_rss_growth_pct=_float(env, "MAX_RSS_GROWTH_PCT", 5.0),
        max_fd_growth=_int(env, "MAX_FD_GROWTH", 10, 0),
        output_format=output,
        idle_pauses=idle_pauses,
        idle_max_s=_float(env, "IDLE_MAX_S", 10.0),
    )


def discover_static_path(client: httpx.Client, base: str) -> str:
    """The stylesheet (else the first script) the HTML shell links, relative to BASE_URL."""
    shell = client.get(base + "/").text
    for pattern in (r'href="\./(static/css/[^"]+\.css)"', r'src="\./(static/js/[^"]+\.js)"'):
        found = re.search(pattern, shell)
        if found:
            return found.group(1)
    raise UsageError(f"{base}/ links no static/css or static/js asset: set STATIC_PATH to one")


@dataclass(frozen=True)
class ProcessSample:
    """Resident memory and open descriptors of the gateway at one moment."""

    rss_bytes: int
    open_fds: int


def sample_process(client: httpx.Client, config: SoakConfig) -> ProcessSample:
    if config.gateway_pid is not None:
        pid = config.gateway_pid
        with open(f"/proc/{pid}/status") as status:
            rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        return ProcessSample(rss_kb * 1024, len(os.listdir(f"/proc/{pid}/fd")))
    text = client.get(config.base_url + config.metrics_path).text
    values: dict[str, float] = {}
    for name in ("fluxlit_process_resident_memory_bytes", "fluxlit_process_open_fds"):
        prefix = f'{name}{{process="gateway"}} '
        line = next((line for line in text.splitlines() if line.startswith(prefix)), None)
        if line is None:
            raise UsageError(f"{config.base_url}{config.metrics_path} has no {prefix.strip()}: set GATEWAY_PID")
        values[name] = float(line[len(prefix) :])
    return ProcessSample(int(values["fluxlit_process_resident_memory_bytes"]), int(values["fluxlit_process_open_fds"]))


@dataclass
class Tally:
    """Outcomes per kind, shared by the workers."""

    ok: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    failed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    samples: list[str] = field(default_factory=list)
    done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, error: str | None) -> None:
        with self.lock:
            self.done += 1
            if error is None:
                self.ok[kind] += 1
                return
            self.failed[kind] += 1
            if len(self.samples) < 20:
                self.samples.append(f"{kind}: {error}")


def websocket_session(config: SoakConfig) -> str | None:
    """Open /_stcore/stream, run the page once far enough to get the session's first message, close."""
    from websockets.sync.client import connect
    from websockets.typing import Subprotocol

    parts = urlsplit(config.base_url)
    url = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}{parts.path}/_stcore/stream"
    try:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        back = BackMsg()
        back.rerun_script.query_string = ""
        back.rerun_script.page_script_hash = ""
        rerun: bytes | None = back.SerializeToString()
    except ImportError:  # without Streamlit's protobufs the session is only opened and closed
        rerun = None
    with connect(url, subprotocols=[Subprotocol("streamlit")], open_timeout=config.timeout_s) as ws:
        if ws.subprotocol != "streamlit":
            return f"subprotocol {ws.subprotocol!r}"
        if rerun is not None:
            ws.send(rerun)
            ws.recv(timeout=config.timeout_s)
    return None


def one_request(client: httpx.Client, config: SoakConfig, kind: str, uploader: StreamlitUploader | None) -> str | None:
    """None when the request did what it should, else why not."""
    if kind == "websocket":
        return websocket_session(config)
    if kind == "upload":
        assert uploader is not None
        return uploader.upload()
    if kind == "api_small":
        response = client.get(f"{config.base_url}{config.api_prefix}/smoke")
    elif kind == "api_large":
        response = client.get(f"{config.base_url}{config.api_prefix}{config.large_api_path}")
    else:
        response = client.get(f"{config.base_url}/{config.static_path}")
    if response.status_code != 200:
        return f"status {response.status_code}"
    length = response.headers.get("content-length")
    if length is not None and int(length) != len(response.content):
        return f"body {len(response.content)} bytes of {length}"
    return None


class Schedule:
    """Hands out request indexes; workers wait at the warm-up boundary until the baseline is sampled, and every
    worker is handed IDLE_THEN_UPLOAD at each idle pause's boundary until the pause is over."""

    def __init__(self, config: SoakConfig) -> None:
        rng = random.Random(config.seed)
        kinds = [kind for kind in KINDS if config.mix.get(kind)]
        self.kinds = rng.choices(kinds, weights=[config.mix[k] for k in kinds], k=config.scheduled)
        span = config.scheduled - config.warmup
        self.pauses = IdlePauses(
            boundaries=[config.warmup + (k + 1) * span // (config.idle_pauses + 1) for k in range(config.idle_pauses)],
            pauses=[rng.uniform(0.0, config.idle_max_s) for _ in range(config.idle_pauses)],
            workers=config.concurrency,
            # every worker ends its current request within a few request timeouts of the first one's arrival
            deadline_s=config.idle_max_s + config.timeout_s * 4,
        )
        self.warmup = config.warmup
        self.next = 0
        self.lock = threading.Lock()
        self.second_phase = threading.Event()

    def take(self) -> str | None:
        with self.lock:
            index = self.next
            if index >= len(self.kinds):
                return None
            if index == self.pauses.next_boundary:
                return IDLE_THEN_UPLOAD
            self.next += 1
        if index >= self.warmup:
            self.second_phase.wait()
        return self.kinds[index]


def run_workers(
    config: SoakConfig, schedule: Schedule, tally: Tally, release: threading.Event
) -> list[threading.Thread]:
    def work() -> None:
        uploader = None
        if config.idle_pauses or config.mix.get("upload"):
            uploader = StreamlitUploader(config.base_url, config.timeout_s)
            uploader.open()
        with httpx.Client(timeout=config.timeout_s) as client:
            while (kind := schedule.take()) is not None:
                if kind == IDLE_THEN_UPLOAD:
                    assert uploader is not None
                    tally.record("upload", schedule.pauses.upload_after_pause(uploader))
                    continue
                try:
                    error = one_request(client, config, kind, uploader)
                except Exception as exc:  # every failure is counted, none ends the soak
                    error = f"{type(exc).__name__}: {exc}"
                tally.record(kind, error)
            release.wait()  # keep the connection open until the last sample is taken
        if uploader is not None:
            uploader.close()

    threads = [threading.Thread(target=work, name=f"soak-{i}", daemon=True) for i in range(config.concurrency)]
    for thread in threads:
        thread.start()
    return threads


def wait_until(predicate: Callable[[], bool], limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


def soak(config: SoakConfig) -> dict[str, Any]:
    with httpx.Client(timeout=config.timeout_s) as control:
        if not config.static_path:
            config = replace(config, static_path=discover_static_path(control, config.base_url))
        schedule, tally, release = Schedule(config), Tally(), threading.Event()
        per_request_limit = config.timeout_s * 3 * config.count  # a bound on every wait, never reached in practice
        started = time.monotonic()
        threads = run_workers(config, schedule, tally, release)
        try:
            wait_until(lambda: tally.done >= config.warmup, per_request_limit)
            time.sleep(1.0)  # let the last warm-up responses and closes settle
            warm = sample_process(control, config)
            schedule.second_phase.set()
            wait_until(lambda: tally.done >= config.count, per_request_limit)
            elapsed = time.monotonic() - started
            time.sleep(1.0)
            end = sample_process(control, config)
        finally:
            schedule.second_phase.set()
            release.set()
            for thread in threads:
                thread.join(timeout=config.timeout_s + 5)
    errors = sum(tally.failed.values())
    growth = (end.rss_bytes - warm.rss_bytes) / warm.rss_bytes * 100 if warm.rss_bytes else 0.0
    return {
        "script": "soak_mixed",
        "base_url": config.base_url,
        "count": config.count,
        "concurrency": config.concurrency,
        "warmup": config.warmup,
        "static_path": config.static_path,
        "elapsed_s": round(elapsed, 3),
        "requests_per_s": round(config.count / elapsed, 1) if elapsed else None,
        "errors": errors,
        "ok": tally.ok,
        "failed": tally.failed,
        "error_samples": tally.samples,
        "idle_pauses": {
            "count": config.idle_pauses,
            "uploads": config.idle_pauses * config.concurrency,
            "over_streamlit_keep_alive": sum(pause > STREAMLIT_KEEP_ALIVE_S for pause in schedule.pauses.pauses),
            "pauses_s": [round(pause, 2) for pause in schedule.pauses.pauses],
        },
        "rss_bytes": {"warm": warm.rss_bytes, "end": end.rss_bytes},
        "rss_growth_pct": round(growth, 2),
        "open_fds": {"warm": warm.open_fds, "end": end.open_fds},
        "fd_growth": end.open_fds - warm.open_fds,
        "passed": errors == 0
        and growth < config.max_rss_growth_pct
        and end.open_fds - warm.open_fds <= config.max_fd_growth,
    }


def render_text(report: dict[str, Any]) -> str:
    rss, fds = report["rss_bytes"], report["open_fds"]
    lines = [
        f"soak_mixed: {report['count']} requests x{report['concurrency']} against {report['base_url']} "
        f"({report['elapsed_s']} s, {report['requests_per_s']} req/s)",
        f"errors={report['errors']} ok={report['ok']} failed={report['failed']}",
        *_idle_line(report),
        f"gateway rss: {rss['warm'] / 2**20:.1f} MiB after warm-up -> {rss['end'] / 2**20:.1f} MiB "
        f"({report['rss_growth_pct']:+.2f}%)",
        f"gateway fds: {fds['warm']} -> {fds['end']} ({report['fd_growth']:+d})",
        *(f"  {sample}" for sample in report["error_samples"]),
        "PASS" if report["passed"] else "FAIL",
    ]
    return "\n".join(lines)


def _idle_line(report: dict[str, Any]) -> list[str]:
    idle = report["idle_pauses"]
    if not idle["count"]:
        return []
    return [
        f"idle pauses: {idle['count']} ({idle['over_streamlit_keep_alive']} over Streamlit's "
        f"{STREAMLIT_KEEP_ALIVE_S:g} s keep-alive, longest {max(idle['pauses_s']):g} s), "
        f"each followed by {report['concurrency']} uploads at once"
    ]


def main() -> int:
    try:
        config = read_config(dict(os.environ))
        report = soak(config)
    except UsageError as exc:
        print(f"soak_mixed: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report) if config.output_format == "json" else render_text(report))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
