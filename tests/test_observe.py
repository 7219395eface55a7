"""The bridges from the supervisor and the proxy to metrics and logs, fed by a real plan and a real upstream."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fluxlit_supervisor import UpstreamState
from starlette.testclient import WebSocketDenialResponse

from fluxlit import FluxLit
from fluxlit.config.settings import Settings
from fluxlit.observability.bridges import ChildStateMetrics, restart_reason
from fluxlit.observability.metrics import GatewayMetrics
from fluxlit.runtime.serve_plan import ServePlan, build_serve_plan
from fluxlit.targets import LoadedTarget
from fluxlit.testing import TestClient
from tests._live import free_port
from tests._logs import JsonLog


class _StandInStreamlit(BaseHTTPRequestHandler):
    """A keep-alive HTTP/1.1 upstream that serves pages and refuses WebSockets as Streamlit does cross-site."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        refused = self.headers.get("upgrade", "").lower() == "websocket"
        body = b"cross-site WebSocket refused" if refused else b"page"
        self.send_response(403 if refused else 200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def upstream_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandInStreamlit)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def metrics_plan(tmp_path: Path) -> ServePlan:
    app = FluxLit()

    @app.page("/")
    def home(st: Any) -> None:
        st.write("home")

    return build_serve_plan(
        Settings(port=8123, state_file=str(tmp_path / "state.json"), metrics=True),
        LoadedTarget("app:app", app, app.api),
    )


def ready_at(port: int, generation: int = 1) -> UpstreamState:
    return UpstreamState("ready", host="127.0.0.1", port=port, pid=4242, generation=generation)


def scrape(client: TestClient) -> str:
    return client.get("/__fluxlit/metrics").text


def loopback_client(plan: ServePlan) -> TestClient:
    """The scraper as Prometheus runs beside the pod: metrics answer loopback (and trusted proxies) only."""
    return TestClient(plan.gateway, client=("127.0.0.1", 50000))


def test_proxied_requests_show_in_the_pool_gauge(tmp_path: Path, upstream_port: int) -> None:
    plan = metrics_plan(tmp_path)
    plan.hub.publish(ready_at(upstream_port))
    with loopback_client(plan) as client:
        assert client.get("/").text == "page"
        text = scrape(client)
    assert 'fluxlit_proxy_pool_connections{state="idle"} 1.0' in text
    assert 'fluxlit_proxy_pool_connections{state="in_use"} 0.0' in text


def test_an_unreachable_child_counts_an_upstream_error(tmp_path: Path) -> None:
    plan = metrics_plan(tmp_path)
    plan.hub.publish(ready_at(free_port()))
    with loopback_client(plan) as client:
        assert client.get("/").status_code == 502
        text = scrape(client)
    errors = [line for line in text.splitlines() if line.startswith("fluxlit_proxy_upstream_errors_total{")]
    assert len(errors) == 1
    assert errors[0].endswith(" 1.0")


def test_a_refused_websocket_is_logged_with_the_upstreams_status(
    tmp_path: Path, upstream_port: int, log_stream: JsonLog
) -> None:
    plan = metrics_plan(tmp_path)
    plan.hub.publish(ready_at(upstream_port))
    with TestClient(plan.gateway) as client:
        refused = pytest.raises(WebSocketDenialResponse)
        with refused, client.websocket_connect("/_stcore/stream", subprotocols=["streamlit"]):
            pass
    closes = [line for line in log_stream.lines() if line["event"] == "websocket.close"]
    assert [line["status"] for line in closes] == [403]


def sample(metrics: GatewayMetrics, name: str, **labels: str) -> float | None:
    value = metrics.registry.get_sample_value(name, labels or None)
    return None if value is None else float(value)


def test_child_states_drive_up_restarts_and_start_time() -> None:
    metrics = GatewayMetrics()
    observe = ChildStateMetrics(metrics)
    for state in (
        UpstreamState("starting", pid=10, generation=1),
        ready_at(1),
        UpstreamState("restarting", generation=1, detail="killed by signal 9"),
        UpstreamState("restarting", generation=1, detail="killed by signal 9"),  # the same restart, seen again
        UpstreamState("starting", pid=11, generation=2),
    ):
        observe(state)
    assert sample(metrics, "fluxlit_supervisor_child_up") == 0.0
    assert sample(metrics, "fluxlit_supervisor_child_restarts_total", reason="signal") == 1.0
    assert sample(metrics, "fluxlit_supervisor_child_start_seconds_count") == 1.0
    observe(ready_at(1, generation=2))
    assert sample(metrics, "fluxlit_supervisor_child_up") == 1.0
    assert sample(metrics, "fluxlit_supervisor_child_start_seconds_count") == 2.0


@pytest.mark.parametrize(
    ("detail", "label"),
    [
        ("restart requested (SIGHUP)", "requested"),
        ("restart requested by the operator", "requested"),
        ("killed by signal 9", "signal"),
        ("health check failed 3 times", "unhealthy"),
        ("exited with code 1", "exit"),
    ],
)
def test_restart_details_map_to_a_small_label_set(detail: str, label: str) -> None:
    assert restart_reason(detail) == label
