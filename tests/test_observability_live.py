"""A scripted workload against a real `fluxlit serve`: every log line and every metric an operator relies on."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from dataclasses import dataclass
from typing import Any

import pytest

from tests._live import LiveServer

pytestmark = pytest.mark.slow
websockets_sync = pytest.importorskip("websockets.sync.client")

SECRET_QUERY = "q-secret-7f3a9"
SECRET_BEARER = "bearer-secret-c41d2"
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
STABLE_FIELDS = {"timestamp", "level", "logger", "event"}
ACCESS_FIELDS = {
    "request_id", "method", "path", "query", "status", "duration_ms", "bytes_out", "dispatch", "client",
    "upstream_generation",
}  # fmt: skip
METRIC_NAMES = (
    "fluxlit_gateway_requests_total",
    "fluxlit_gateway_request_duration_seconds",
    "fluxlit_gateway_responses_total",
    "fluxlit_gateway_in_flight_requests",
    "fluxlit_proxy_upstream_errors_total",
    "fluxlit_proxy_pool_connections",
    "fluxlit_websocket_connections",
    "fluxlit_websocket_messages_total",
    "fluxlit_websocket_session_seconds",
    "fluxlit_supervisor_child_up",
    "fluxlit_supervisor_child_restarts_total",
    "fluxlit_supervisor_child_start_seconds",
    "fluxlit_process_resident_memory_bytes",
    "fluxlit_process_cpu_seconds_total",
)


@dataclass
class Workload:
    """What the scripted run did, and what it left behind."""

    lines: list[dict[str, Any]]
    text: str
    metrics: str
    first_child: int
    second_child: int
    stalled_status: int
    stop_seconds: float


def _rerun_message() -> bytes:
    """The BackMsg a browser sends first: run the script (so Streamlit answers with ForwardMsgs)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    message = BackMsg()
    message.rerun_script.query_string = ""
    message.rerun_script.page_script_hash = ""
    return message.SerializeToString()


def _websocket_session(live: LiveServer) -> None:
    url = f"ws://127.0.0.1:{live.port}/_stcore/stream"
    with websockets_sync.connect(url, subprotocols=["streamlit"], open_timeout=10, close_timeout=5) as ws:
        assert ws.subprotocol == "streamlit"
        ws.send(_rerun_message())
        deadline = time.monotonic() + 15
        received = 0
        while received < 3 and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                ws.recv(timeout=1)
                received += 1
        assert received >= 1, "Streamlit sent nothing after a rerun request"
        ws.close(1000)


def _stalled_request(live: LiveServer) -> int:
    """SIGSTOP Streamlit so one proxied request times out upstream (the gateway's read timeout is 2 s)."""
    pid = live.child_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        return live.get("/_stcore/health", timeout=15).status_code
    finally:
        os.kill(pid, signal.SIGCONT)


def _restart_child(live: LiveServer) -> tuple[int, int]:
    first = live.child_pid()
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(AssertionError, OSError, ValueError):
            if live.child_pid() != first:
                break
        time.sleep(0.1)
    live.wait_ready()
    return first, live.child_pid()


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    live = LiveServer(
        tmp_path_factory.mktemp("observability"), env={"FLUXLIT_GATEWAY_UPSTREAM_READ_TIMEOUT_S": "2"}
    ).start()
    try:
        live.wait_ready()
        smoke = live.get(
            f"/api/smoke?token={SECRET_QUERY}&page=1",
            headers={"Authorization": f"Bearer {SECRET_BEARER}", "X-Request-ID": "obs-api-1"},
        )
        assert smoke.status_code == 200
        assert live.get("/", headers={"X-Request-ID": "obs-page-1"}).status_code == 200
        _websocket_session(live)
        stalled = _stalled_request(live)
        live.wait_ready()
        first, second = _restart_child(live)
        assert live.get("/").status_code == 200
        metrics = live.get("/__fluxlit/metrics").text
    finally:
        started = time.monotonic()
        live.stop()
        stop_seconds = time.monotonic() - started
    text = live.log()
    lines = []
    for raw in text.splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            lines.append({"not_json": raw})
    return Workload(lines, text, metrics, first, second, stalled, stop_seconds)


def test_every_line_is_one_json_object(workload: Workload) -> None:
    assert [line["not_json"] for line in workload.lines if "not_json" in line] == []


def test_every_line_has_the_stable_fields(workload: Workload) -> None:
    for line in workload.lines:
        if "not_json" in line:
            continue
        assert set(line) >= STABLE_FIELDS, line
        assert RFC3339_UTC.match(line["timestamp"]), line["timestamp"]
        assert line["level"] in ("debug", "info", "warning", "error", "critical"), line


def test_access_lines_have_the_exact_fields(workload: Workload) -> None:
    access = [line for line in workload.lines if line.get("event") == "request"]
    assert len(access) >= 5
    for line in access:
        assert set(line) >= ACCESS_FIELDS, line
        assert line["logger"] == "fluxlit.access"
        assert isinstance(line["status"], int)
        assert isinstance(line["bytes_out"], int)
        assert line["duration_ms"] >= 0
        assert re.fullmatch(r"127\.0\.0\.1:\d+", line["client"]), line
        assert line["dispatch"] in ("api", "proxy", "internal")
        if line["dispatch"] == "proxy":
            assert isinstance(line["upstream_generation"], int)
        else:
            assert line["upstream_generation"] is None


def test_api_line_keeps_the_request_id_and_redacts_the_query(workload: Workload) -> None:
    line = next(line for line in workload.lines if line.get("request_id") == "obs-api-1")
    assert (line["method"], line["path"], line["status"], line["dispatch"]) == ("GET", "/api/smoke", 200, "api")
    assert line["query"] == "token=[REDACTED]&page=1"


def test_proxied_page_line_names_the_upstream_generation(workload: Workload) -> None:
    line = next(line for line in workload.lines if line.get("request_id") == "obs-page-1")
    assert (line["path"], line["status"], line["dispatch"], line["upstream_generation"]) == ("/", 200, "proxy", 1)
    assert line["bytes_out"] > 0


def test_websocket_session_logs_open_and_close_with_code_and_duration(workload: Workload) -> None:
    opened = [line for line in workload.lines if line.get("event") == "websocket.open"]
    closed = [line for line in workload.lines if line.get("event") == "websocket.close"]
    assert [line["path"] for line in opened] == ["/_stcore/stream"]
    assert len(closed) == 1
    close = closed[0]
    assert close["request_id"] == opened[0]["request_id"]
    assert (close["status"], close["method"], close["closed_by"]) == (101, "WEBSOCKET", "client")
    # hypercorn reports every client-initiated close as 1006 to the app (it drops the client's code).
    assert close["close_code"] in (1000, 1006)
    assert close["duration_ms"] > 0
    assert close["messages_in"] >= 1
    assert close["messages_out"] >= 1


def test_streamlit_output_is_relogged_with_pid_and_generation(workload: Workload) -> None:
    child = [line for line in workload.lines if line.get("logger") == "streamlit"]
    assert child, "no logger=streamlit lines"
    for line in child:
        assert isinstance(line["pid"], int)
        assert isinstance(line["generation"], int)
    by_generation = {line["generation"]: line["pid"] for line in child}
    assert by_generation.get(1) == workload.first_child
    assert by_generation.get(2) == workload.second_child


def test_no_secret_reaches_the_log(workload: Workload) -> None:
    assert SECRET_QUERY not in workload.text
    assert SECRET_BEARER not in workload.text


def test_stalled_upstream_answers_504(workload: Workload) -> None:
    assert workload.stalled_status == 504


def test_every_metric_is_scraped_after_the_workload(workload: Workload) -> None:
    missing = [name for name in METRIC_NAMES if name not in workload.metrics]
    assert not missing, missing


def _sample(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{name}{{{labels}}} not in the scrape"
    return float(match.group(1))


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("fluxlit_proxy_upstream_errors_total", 'kind="timeout"'),
        ("fluxlit_supervisor_child_restarts_total", 'reason="signal"'),
        ("fluxlit_websocket_messages_total", 'direction="upstream"'),
        ("fluxlit_websocket_messages_total", 'direction="downstream"'),
        ("fluxlit_websocket_session_seconds_count", ""),
        ("fluxlit_supervisor_child_start_seconds_count", ""),
        ("fluxlit_supervisor_child_up", ""),
        ("fluxlit_process_resident_memory_bytes", 'process="gateway"'),
        ("fluxlit_process_resident_memory_bytes", 'process="streamlit"'),
        ("fluxlit_process_cpu_seconds_total", 'process="gateway"'),
        ("fluxlit_process_cpu_seconds_total", 'process="streamlit"'),
    ],
)
def test_workload_moved_the_metric(workload: Workload, name: str, labels: str) -> None:
    assert _sample(workload.metrics, name, labels) > 0


def test_websocket_gauge_is_back_to_zero(workload: Workload) -> None:
    assert _sample(workload.metrics, "fluxlit_websocket_connections") == 0


def test_idle_server_stops_well_within_the_graceful_timeout(workload: Workload) -> None:
    # Nothing is in flight at stop time, so the drain has nothing to wait for (graceful timeout: 10 s).
    assert workload.stop_seconds < 5, f"stop took {workload.stop_seconds:.1f} s with no request in flight"
