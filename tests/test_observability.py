"""Access log lines, request metrics and redaction through the real gateway."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import generate_latest
from starlette.websockets import WebSocketDisconnect

import fluxlit.observability.metrics
from fluxlit import FluxLit
from fluxlit.gateway.router import build_gateway
from fluxlit.observability.access import AccessObserver
from fluxlit.observability.bridges import ChildStateMetrics, MetricsProxyHooks
from fluxlit.observability.logs import configure_logging, get_logger
from fluxlit.observability.metrics import GatewayMetrics, ProcStat, _open_fds, parse_proc_stat, read_proc_stat
from fluxlit.observability.redaction import REDACTED, redact_headers, redact_query
from fluxlit.testing import TestClient
from tests._logs import JsonLog

ACCESS_FIELDS = {
    "timestamp", "level", "logger", "event", "request_id", "method", "path", "query", "status",
    "duration_ms", "bytes_out", "dispatch", "client", "upstream_generation",
}  # fmt: skip


def make_app() -> FluxLit:
    app = FluxLit()

    @app.api.get("/hello")
    def hello() -> dict[str, str]:
        logging.getLogger("user.code").info("inside the handler")
        return {"hi": "there"}

    return app


@pytest.fixture
def observed() -> Iterator[tuple[Any, GatewayMetrics]]:
    """A client on loopback: the metrics endpoint answers only loopback and trusted peers by default."""
    metrics = GatewayMetrics()
    gateway = build_gateway(
        make_app(), observer=AccessObserver(metrics), internal={"/__fluxlit/metrics": metrics.endpoint()}
    )
    with TestClient(gateway, client=("127.0.0.1", 50000)) as client:
        yield client, metrics


def test_one_access_line_per_request_with_stable_fields(observed: Any, log_stream: JsonLog) -> None:
    client, _ = observed
    response = client.get("/api/hello?token=s3cret&page=2", headers={"X-Request-ID": "rid-1"})
    assert response.status_code == 200
    access = [line for line in log_stream.lines() if line["event"] == "request"]
    assert len(access) == 1
    line = access[0]
    assert set(line) == ACCESS_FIELDS
    assert line["request_id"] == "rid-1"
    assert (line["method"], line["path"], line["status"], line["dispatch"]) == ("GET", "/api/hello", 200, "api")
    assert line["query"] == f"token={REDACTED}&page=2"
    assert line["bytes_out"] == len(response.content)
    assert line["level"] == "info"
    assert line["timestamp"].endswith("Z")
    assert "s3cret" not in log_stream.getvalue()


def test_metrics_count_requests_but_not_scrapes(observed: Any) -> None:
    client, _ = observed
    client.get("/api/hello")
    client.get("/nowhere")  # proxy slot with no upstream: 503
    client.get("/__fluxlit/metrics")
    text = client.get("/__fluxlit/metrics").text
    assert 'fluxlit_gateway_requests_total{dispatch="api",method_kind="GET"} 1.0' in text
    assert 'fluxlit_gateway_requests_total{dispatch="proxy",method_kind="GET"} 1.0' in text
    assert 'fluxlit_gateway_responses_total{code_class="5xx",dispatch="proxy"} 1.0' in text
    assert 'fluxlit_gateway_request_duration_seconds_count{dispatch="api"} 1.0' in text
    assert 'fluxlit_gateway_in_flight_requests{dispatch="api"} 0.0' in text
    assert "__fluxlit" not in "".join(line for line in text.splitlines() if "requests_total{" in line)


def test_metrics_use_their_own_registry() -> None:
    from prometheus_client import REGISTRY

    GatewayMetrics()
    GatewayMetrics()  # a second instance must not clash in a shared registry
    assert (
        REGISTRY.get_sample_value("fluxlit_gateway_requests_total", {"dispatch": "api", "method_kind": "GET"}) is None
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("a=1&b=2", "a=1&b=2"),
        ("fluxlit_sid=abc", f"fluxlit_sid={REDACTED}"),
        ("TOKEN=x&y=1", f"TOKEN={REDACTED}&y=1"),
        ("auth_code=1&access_token=2&password=3", f"auth_code={REDACTED}&access_token={REDACTED}&password={REDACTED}"),
        ("code=abc&state=xyz", f"code={REDACTED}&state=xyz"),
        ("api_key=k&client_secret=s", f"api_key={REDACTED}&client_secret={REDACTED}"),
        ("X-Amz-Signature=abc&X-Amz-Expires=60", f"X-Amz-Signature={REDACTED}&X-Amz-Expires=60"),
    ],
)
def test_redact_query(query: str, expected: str) -> None:
    assert redact_query(query) == expected


def test_redact_query_takes_extra_keys() -> None:
    assert redact_query("my_key=1", ["MY_KEY"]) == f"my_key={REDACTED}"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (("Authorization", "Bearer abc.def"), ("Authorization", f"Bearer {REDACTED}")),
        (("Authorization", "opaque"), ("Authorization", REDACTED)),
        (("Cookie", "a=1"), ("Cookie", REDACTED)),
        (("Set-Cookie", "a=1"), ("Set-Cookie", REDACTED)),
        (("Proxy-Authorization", "Basic xyz"), ("Proxy-Authorization", f"Basic {REDACTED}")),
        (("Sec-WebSocket-Protocol", "streamlit, xsrf-token"), ("Sec-WebSocket-Protocol", REDACTED)),
        (("Accept", "text/html"), ("Accept", "text/html")),
    ],
)
def test_redact_headers(header: tuple[str, str], expected: tuple[str, str]) -> None:
    assert redact_headers([header]) == [expected]


# --- log format --------------------------------------------------------------------------------------------

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    yield
    logging.getLogger().handlers.clear()


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(
    ("fmt", "stream_type", "is_json"),
    [
        ("auto", io.StringIO, True),
        ("auto", FakeTTY, False),
        ("json", FakeTTY, True),
        ("console", io.StringIO, False),
    ],
)
def test_log_format_follows_the_flag_then_the_tty(
    fmt: str, stream_type: type[io.StringIO], is_json: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    stream = stream_type()
    configure_logging("info", fmt, stream=stream)
    get_logger("fmt.test").info("hello", answer=42)
    text = stream.getvalue()
    if is_json:
        line = json.loads(text)
        assert (line["event"], line["answer"], line["logger"], line["level"]) == ("hello", 42, "fmt.test", "info")
    else:
        assert "hello" in text
        assert "answer=42" in text
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)


@pytest.mark.usefixtures("restore_logging")
def test_console_on_a_tty_is_coloured_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    coloured = FakeTTY()
    configure_logging("info", "auto", stream=coloured)
    get_logger("c").info("hi")
    monkeypatch.setenv("NO_COLOR", "1")
    plain = FakeTTY()
    configure_logging("info", "auto", stream=plain)
    get_logger("c").info("hi")
    assert "\x1b[" in coloured.getvalue()
    assert "\x1b[" not in plain.getvalue()


def test_timestamps_are_rfc3339_utc_with_z(log_stream: JsonLog) -> None:
    get_logger("ts").info("one")
    logging.getLogger("stdlib.ts").warning("two")
    stamps = [line["timestamp"] for line in log_stream.lines()]
    assert len(stamps) == 2
    assert all(RFC3339_UTC.match(stamp) for stamp in stamps), stamps


def test_an_exception_stays_one_json_line(log_stream: JsonLog) -> None:
    try:
        raise ValueError("bad thing")
    except ValueError:
        logging.getLogger("boom").exception("failed")
    [line] = log_stream.lines()
    assert line["event"] == "failed"
    assert "ValueError: bad thing" in line["exception"]


# --- WebSocket access lines ----------------------------------------------------------------------------------


def fake_ws_proxy(metrics: GatewayMetrics, *, accept: bool) -> Any:
    """Stands in for fluxlit_proxy.ReverseProxy: reports to the hooks exactly where the real proxy does."""
    hooks = MetricsProxyHooks(metrics)

    async def proxy(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()  # websocket.connect
        if not accept:
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept", "subprotocol": "streamlit"})
        hooks.websocket_opened()
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                hooks.websocket_closed(message.get("code", 1005), 0.01)
                return
            hooks.websocket_message("upstream", len(message.get("bytes") or b""))
            await send({"type": "websocket.send", "bytes": b"pong"})
            hooks.websocket_message("downstream", 4)

    return proxy


def test_websocket_session_logs_open_and_close_lines(gateway_test_client_factory: Any, log_stream: JsonLog) -> None:
    metrics = GatewayMetrics()
    client = gateway_test_client_factory(
        make_app(), observer=AccessObserver(metrics), proxy=fake_ws_proxy(metrics, accept=True)
    )
    with client.websocket_connect("/_stcore/stream?fluxlit_sid=hush", subprotocols=["streamlit"]) as ws:
        ws.send_bytes(b"ping")
        assert ws.receive_bytes() == b"pong"
        ws.close(1000)
    events = {line["event"]: line for line in log_stream.lines() if line["event"].startswith("websocket")}
    opened, closed = events["websocket.open"], events["websocket.close"]
    assert opened["request_id"] == closed["request_id"]
    assert (opened["path"], opened["query"], opened["method"]) == (
        "/_stcore/stream",
        f"fluxlit_sid={REDACTED}",
        "WEBSOCKET",
    )
    assert (closed["status"], closed["close_code"], closed["closed_by"]) == (101, 1000, "client")
    assert (closed["messages_in"], closed["messages_out"]) == (1, 1)
    assert closed["duration_ms"] > 0
    assert "hush" not in log_stream.getvalue()


def test_refused_websocket_logs_403_and_the_close_code(gateway_test_client_factory: Any, log_stream: JsonLog) -> None:
    metrics = GatewayMetrics()
    client = gateway_test_client_factory(
        make_app(), observer=AccessObserver(metrics), proxy=fake_ws_proxy(metrics, accept=False)
    )
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/_stcore/stream"):
        pass
    events = [line for line in log_stream.lines() if line["event"].startswith("websocket")]
    assert [line["event"] for line in events] == ["websocket.close"]
    assert (events[0]["status"], events[0]["close_code"], events[0]["closed_by"]) == (403, 1008, "server")


# --- process metrics -------------------------------------------------------------------------------------------


def test_proc_stat_parsing_survives_odd_command_names() -> None:
    fields = ["S", "42"] + ["0"] * 9 + ["250", "150"] + ["0"] * 6 + ["1000", "0", "10"]
    stat = parse_proc_stat("123 (we ird) (name) " + " ".join(fields))
    assert stat.ppid == 42
    assert stat.start_ticks == 1000
    assert stat.rss_bytes == 10 * os.sysconf("SC_PAGE_SIZE")
    assert stat.cpu_seconds == pytest.approx(400 / os.sysconf("SC_CLK_TCK"))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_gateway_process_series_without_a_child() -> None:
    text = generate_latest(GatewayMetrics().registry).decode()
    assert 'fluxlit_process_resident_memory_bytes{process="gateway"}' in text
    assert 'fluxlit_process_cpu_seconds_total{process="gateway"}' in text
    assert 'process="streamlit"' not in text


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_child_series_only_for_a_process_we_forked(monkeypatch: pytest.MonkeyPatch) -> None:
    # Our own pid is not our child: a stale or reused pid must not be reported as Streamlit.
    assert 'process="streamlit"' not in generate_latest(GatewayMetrics(child_pid=os.getpid).registry).decode()
    real = fluxlit.observability.metrics.read_proc_stat

    def as_if_forked(pid: int) -> ProcStat | None:
        stat = real(os.getpid())
        return dataclasses.replace(stat, ppid=os.getpid()) if stat is not None and pid == 4242 else real(pid)

    monkeypatch.setattr(fluxlit.observability.metrics, "read_proc_stat", as_if_forked)
    monkeypatch.setattr(fluxlit.observability.metrics, "_open_fds", lambda pid: 7)
    metrics = GatewayMetrics()
    ChildStateMetrics(metrics)(SimpleNamespace(state="ready", pid=4242, detail=""))
    text = generate_latest(metrics.registry).decode()
    assert 'fluxlit_process_open_fds{process="streamlit"} 7.0' in text
    assert 'fluxlit_process_resident_memory_bytes{process="streamlit"}' in text


def test_client_chosen_methods_share_one_other_label(observed: Any) -> None:
    client, _ = observed
    for index in range(5):
        client.request(f"FOO{index}", "/nowhere")
    text = client.get("/__fluxlit/metrics").text
    assert 'method_kind="OTHER"} 5.0' in text
    assert "FOO" not in text


def impossible_pid() -> int:
    """A pid above the kernel's pid_max: no process can ever have it."""
    with open("/proc/sys/kernel/pid_max") as handle:
        return int(handle.read()) + 1


def test_a_process_that_is_gone_has_no_stat_and_no_fds() -> None:
    pid = impossible_pid()
    assert read_proc_stat(pid) is None
    assert _open_fds(pid) is None
