"""Access log lines, request metrics and redaction through the real gateway."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from fluxlit import FluxLit
from fluxlit.access import AccessObserver
from fluxlit.logs import configure_logging
from fluxlit.metrics import GatewayMetrics
from fluxlit.redaction import REDACTED, redact_headers, redact_query

ACCESS_FIELDS = {
    "timestamp", "level", "logger", "event", "request_id", "method", "path", "query", "status",
    "duration_ms", "bytes_out", "dispatch", "client", "upstream_generation",
}  # fmt: skip


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    yield stream
    logging.getLogger().handlers.clear()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def make_app() -> FluxLit:
    app = FluxLit()

    @app.api.get("/hello")
    def hello() -> dict[str, str]:
        logging.getLogger("user.code").info("inside the handler")
        return {"hi": "there"}

    return app


@pytest.fixture
def observed(gateway_test_client_factory: Any) -> tuple[Any, GatewayMetrics]:
    metrics = GatewayMetrics()
    client = gateway_test_client_factory(
        make_app(), observer=AccessObserver(metrics), internal={"/__fluxlit/metrics": metrics.endpoint()}
    )
    return client, metrics


def test_one_access_line_per_request_with_stable_fields(observed: Any, log_stream: io.StringIO) -> None:
    client, _ = observed
    response = client.get("/api/hello?token=s3cret&page=2", headers={"X-Request-ID": "rid-1"})
    assert response.status_code == 200
    access = [line for line in lines(log_stream) if line["event"] == "request"]
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


def test_user_code_log_lines_carry_the_request_id(observed: Any, log_stream: io.StringIO) -> None:
    client, _ = observed
    client.get("/api/hello", headers={"X-Request-ID": "rid-2"})
    user = next(line for line in lines(log_stream) if line["event"] == "inside the handler")
    assert (user["logger"], user["request_id"]) == ("user.code", "rid-2")


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
    assert REGISTRY.get_sample_value("fluxlit_gateway_requests_total", {"dispatch": "api", "method_kind": "GET"}) is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("a=1&b=2", "a=1&b=2"),
        ("fluxlit_sid=abc", f"fluxlit_sid={REDACTED}"),
        ("TOKEN=x&y=1", f"TOKEN={REDACTED}&y=1"),
        ("auth_code=1&access_token=2&password=3", f"auth_code={REDACTED}&access_token={REDACTED}&password={REDACTED}"),
        ("code=abc&state=xyz", f"code={REDACTED}&state=xyz"),
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
