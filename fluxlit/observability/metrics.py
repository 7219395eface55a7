"""Prometheus metrics of one gateway process, in its own registry (never the global default one)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fluxlit.asgi_types import Receive, Scope, Send, send_bytes

STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HTTP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SESSION_BUCKETS = (1, 10, 60, 300, 900, 1800, 3600, 7200, 14400)


ChildPid = Callable[[], "int | None"]


class GatewayMetrics:
    """Every series FluxLit exports; names and labels are part of the public contract (see docs).

    ``child_pid`` returns the Streamlit child's pid (None while there is none) for the
    ``fluxlit_process_*{process="streamlit"}`` series; without it the pid last reported through
    ``set_child_pid`` (ChildStateMetrics does this from the supervisor's state) is used.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, child_pid: ChildPid | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self._reported_child_pid: int | None = None
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self._in_flight_children: dict[str, Any] = {}
        self.child_pid: ChildPid = child_pid or (lambda: self._reported_child_pid)
        self.requests = Counter(
            "fluxlit_gateway_requests_total",
            "Requests by dispatch and method.",
            ["dispatch", "method_kind"],
            registry=r,
        )
        self.duration = Histogram(
            "fluxlit_gateway_request_duration_seconds",
            "HTTP request duration (WebSocket sessions are in fluxlit_websocket_session_seconds).",
            ["dispatch"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.responses = Counter(
            "fluxlit_gateway_responses_total", "Responses by status class.", ["dispatch", "code_class"], registry=r
        )
        self.in_flight = Gauge(
            "fluxlit_gateway_in_flight_requests", "HTTP requests being served.", ["dispatch"], registry=r
        )
        self.upstream_errors = Counter(
            "fluxlit_proxy_upstream_errors_total", "Failures talking to Streamlit.", ["kind"], registry=r
        )
        self.pool = Gauge("fluxlit_proxy_pool_connections", "Upstream connections by state.", ["state"], registry=r)
        self.websockets = Gauge("fluxlit_websocket_connections", "Open proxied WebSocket sessions.", registry=r)
        self.ws_messages = Counter(
            "fluxlit_websocket_messages_total", "Proxied WebSocket messages.", ["direction"], registry=r
        )
        self.ws_sessions = Histogram(
            "fluxlit_websocket_session_seconds",
            "Proxied WebSocket session length.",
            buckets=SESSION_BUCKETS,
            registry=r,
        )
        self.child_up = Gauge("fluxlit_supervisor_child_up", "1 while Streamlit is ready.", registry=r)
        self.child_restarts = Counter(
            "fluxlit_supervisor_child_restarts_total", "Streamlit restarts by reason.", ["reason"], registry=r
        )
        self.child_start = Histogram(
            "fluxlit_supervisor_child_start_seconds",
            "Seconds from spawning Streamlit to its first healthy answer.",
            buckets=(0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
            registry=r,
        )

        r.register(ProcessCollector(lambda: {"gateway": os.getpid(), "streamlit": self._live_child_pid()}))

    def set_child_pid(self, pid: int | None) -> None:
        """The current Streamlit pid, as the supervisor reports it (used when no ``child_pid`` was given)."""
        self._reported_child_pid = pid

    def _live_child_pid(self) -> int | None:
        pid = self.child_pid()
        if pid is None:
            return None
        # A pid outlives its process in the supervisor's state; only a process we forked is ours to report.
        stat = read_proc_stat(pid)
        return pid if stat is not None and stat.ppid == os.getpid() else None

    def observe_http(self, dispatch: str, method: str, status: int, duration_s: float) -> None:
        # Clients choose the method token: an open label set would grow the registry without bound.
        method = method if method in STANDARD_METHODS else "OTHER"
        # labels() takes a lock and hashes a tuple each call; the label sets are few, so keep the children.
        key = (dispatch, method, status // 100)
        children = self._http_children.get(key)
        if children is None:
            children = (
                self.requests.labels(dispatch, method),
                self.duration.labels(dispatch),
                self.responses.labels(dispatch, f"{status // 100}xx"),
            )
            if len(self._http_children) < 1024:  # bounded: methods come from clients
                self._http_children[key] = children
        requests, duration, responses = children
        requests.inc()
        duration.observe(duration_s)
        responses.inc()

    def in_flight_for(self, dispatch: str) -> Any:
        child = self._in_flight_children.get(dispatch)
        if child is None:
            child = self._in_flight_children[dispatch] = self.in_flight.labels(dispatch)
        return child

    def count_websocket(self, dispatch: str) -> None:
        self.requests.labels(dispatch, "WEBSOCKET").inc()

    def endpoint(self) -> Callable[[Scope, Receive, Send], Any]:
        """The ASGI endpoint serving the exposition format."""
        registry = self.registry

        async def metrics_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            # The gateway hands internal endpoints HTTP requests only.
            await send_bytes(send, 200, generate_latest(registry), CONTENT_TYPE_LATEST.encode())

        return metrics_endpoint


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat the process series need."""

    ppid: int
    cpu_seconds: float
    start_ticks: int
    rss_bytes: int


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def parse_proc_stat(text: str) -> ProcStat:
    """Parse one /proc/<pid>/stat line; the command name may hold spaces and parentheses, so split after it."""
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state) of proc(5): ppid is 4, utime/stime 14/15, starttime 22, rss 24.
    return ProcStat(
        ppid=int(fields[1]),
        cpu_seconds=(int(fields[11]) + int(fields[12])) / _CLOCK_TICKS,
        start_ticks=int(fields[19]),
        rss_bytes=int(fields[21]) * _PAGE_SIZE,
    )


def read_proc_stat(pid: int) -> ProcStat | None:
    try:
        return parse_proc_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError):  # pragma: no cover - off Linux: no /proc/stat, and then no process series
        pass
    return None  # pragma: no cover - Linux always writes a btime line


def _open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


class ProcessCollector(Collector):
    """fluxlit_process_* series for the gateway and the Streamlit child, read from /proc at scrape time.

    prometheus_client's own process collector only sees the scraping process; the child matters as much.
    Off Linux (no /proc) nothing is exported.
    """

    def __init__(self, pids: Callable[[], dict[str, int | None]]) -> None:
        self._pids = pids
        self._boot = _boot_time()

    def collect(self) -> Iterator[Metric]:
        rss = GaugeMetricFamily("fluxlit_process_resident_memory_bytes", "Resident memory.", labels=["process"])
        cpu = CounterMetricFamily("fluxlit_process_cpu_seconds", "User and system CPU time.", labels=["process"])
        fds = GaugeMetricFamily("fluxlit_process_open_fds", "Open file descriptors.", labels=["process"])
        start = GaugeMetricFamily(
            "fluxlit_process_start_time_seconds", "Start time, seconds since the epoch.", labels=["process"]
        )
        for name, pid in self._pids().items():
            stat = read_proc_stat(pid) if pid is not None else None
            if pid is None or stat is None:
                continue
            rss.add_metric([name], stat.rss_bytes)
            cpu.add_metric([name], stat.cpu_seconds)
            open_fds = _open_fds(pid)
            if open_fds is not None:
                fds.add_metric([name], open_fds)
            if self._boot is not None:
                start.add_metric([name], self._boot + stat.start_ticks / _CLOCK_TICKS)
        yield from (rss, cpu, fds, start)

    def describe(self) -> Iterator[Metric]:
        # Describing without collecting keeps registration free of /proc reads (auto_describe would collect).
        return iter(())
