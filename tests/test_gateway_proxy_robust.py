"""The proxy to Streamlit when something goes wrong or a limit is reached, through the gateway as `fluxlit serve`
composes it, with a real upstream on loopback: upstream timeouts, Streamlit restarting, body limits; and the
WebSocket edges: refusals before any upstream, and the limits `fluxlit serve` sets (pings, per-message caps both
ways, one reassembly budget shared by hypercorn and the proxy, sized from memory unless set).

Where we differ from the seed's "upstream connect / read timeout -> 502": a connect failure or connect timeout is
502, but an upstream that accepted the request and is slow to answer gets **504** (`upstream did not respond in
time`, after FLUXLIT_GATEWAY_UPSTREAM_READ_TIMEOUT_S), and a Streamlit that is down or restarting gets **503** with
`Retry-After` at once: the supervisor knows, so no request waits for a connect timeout. The proxy's rules for every
other misbehaving upstream are in tests/proxy/test_http_failures.py and tests/proxy/test_websocket.py.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fluxlit_proxy import ReverseProxy, Upstream
from fluxlit_supervisor import UpstreamState
from starlette.websockets import WebSocketDisconnect

from fluxlit import FluxLit
from fluxlit.config.settings import Settings
from fluxlit.gateway.router import build_gateway
from fluxlit.runtime import hypercorn_options as serve_module
from fluxlit.runtime.serve_plan import ServePlan, build_serve_plan, reassembly_budget_bytes
from fluxlit.targets import LoadedTarget
from fluxlit.testing import TestClient
from tests._gateway_ws import open_websocket
from tests._origin import LoopbackOrigin, app_with_a_page, plan_ready_at
from tests.test_hostile_http import STALLED, GatewayServer, exchange

MIB = 1024 * 1024


# --- HTTP: timeouts, a restarting Streamlit, body limits ---


def test_a_streamlit_slow_to_answer_gets_504_after_the_read_timeout(tmp_path: Path) -> None:
    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Never answers: waits (5 s at most) for the proxy to give up and drop the connection.
        assert (await asyncio.wait_for(receive(), timeout=5))["type"] == "http.disconnect"

    with LoopbackOrigin(slow) as origin:
        plan = plan_ready_at(origin.port, tmp_path, upstream_read_timeout_s=0.3)
        with TestClient(plan.gateway) as client:
            response = client.get("/slow/page")
    assert (response.status_code, response.text) == (504, "upstream did not respond in time\n")
    assert 0.3 <= response.elapsed.total_seconds() < 1.5


def test_a_streamlit_that_cannot_be_connected_to_in_time_gets_502(tmp_path: Path) -> None:
    # A listener with a full accept queue: the kernel drops further SYNs, so connecting hangs.
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.connect(listener.getsockname())
        plan = plan_ready_at(listener.getsockname()[1], tmp_path, upstream_connect_timeout_s=0.3)
        with TestClient(plan.gateway) as client:
            response = client.get("/page")
    assert (response.status_code, response.text) == (502, "upstream connect timed out\n")


def test_while_streamlit_restarts_pages_get_503_with_retry_after_then_reach_the_new_child(tmp_path: Path) -> None:
    with LoopbackOrigin() as first, LoopbackOrigin() as second:
        plan = plan_ready_at(first.port, tmp_path)
        with TestClient(plan.gateway) as client:
            assert client.get("/page").status_code == 200
            plan.hub.publish(UpstreamState("restarting", generation=1, detail="exit code 1"))
            restarting = client.get("/page")
            plan.hub.publish(UpstreamState("ready", host="127.0.0.1", port=second.port, pid=2, generation=2))
            assert client.get("/page").status_code == 200
    assert (restarting.status_code, restarting.text) == (503, "Streamlit is restarting\n")
    assert restarting.headers["retry-after"]
    assert (len(first.requests), len(second.requests)) == (1, 1)


def test_a_body_over_the_proxy_limit_gets_413_before_streamlit_sees_it_and_the_api_is_not_capped(
    tmp_path: Path,
) -> None:
    app = app_with_a_page()

    @app.api.post("/upload")
    async def upload(request: Request) -> int:
        return len(await request.body())

    with LoopbackOrigin() as origin:
        plan = plan_ready_at(origin.port, tmp_path, app=app, max_proxy_request_body_bytes=1000)
        with TestClient(plan.gateway) as client:
            over = client.post("/_stcore/upload_file/s/f", content=b"x" * 1001)
            at_limit = client.post("/_stcore/upload_file/s/f", content=b"x" * 1000)
            to_the_api = client.post("/api/upload", content=b"x" * 5000)
    assert (over.status_code, over.text) == (413, "request body exceeds 1000 bytes\n")
    assert at_limit.json()["body_length"] == 1000
    assert to_the_api.json() == 5000
    assert [len(seen.body) for seen in origin.requests] == [1000]


def test_a_stalled_body_through_the_real_proxy_gets_408_and_the_upstream_connection_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream_saw: list[bytes] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(10)

        def upstream() -> None:  # reads the forwarded request until the proxy drops the connection; never answers
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(10)
                while chunk := conn.recv(65536):
                    upstream_saw.append(chunk)

        reader = threading.Thread(target=upstream, daemon=True)
        reader.start()
        port = listener.getsockname()[1]
        with GatewayServer(Settings(body_read_timeout_s=1.0)) as server, caplog.at_level("WARNING"):
            server.gateway.proxy = ReverseProxy(lambda: Upstream(port=port))
            reply = exchange(server.port, STALLED["proxy-content-length"], wait=5.0)
            reader.join(timeout=5)
    assert (reply.status, reply.closed) == (408, True)
    assert not reader.is_alive()
    assert b"".join(upstream_saw).endswith(b"\r\n\r\nabc")
    assert [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []


# --- WebSocket edges: refused before any upstream ---


def test_non_api_websocket_without_upstream_is_closed_1013(gateway_test_client_factory: Any) -> None:
    client = gateway_test_client_factory(FluxLit())
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/_stcore/stream"):
        pass
    assert info.value.code == 1013


def test_a_websocket_to_a_dot_segment_path_is_closed_1008_with_the_reason() -> None:
    sent = open_websocket(build_gateway(FluxLit()), b"/pages/../_stcore/stream", [(b"host", b"example.com")])
    assert [(m["type"], m["code"], m["reason"]) for m in sent] == [
        ("websocket.close", 1008, "Paths with '.' or '..' segments are refused.")
    ]


# --- WebSocket limits: what `fluxlit serve` sets ---


def plan_for(tmp_path: Path, app: FluxLit | None = None, **settings: object) -> ServePlan:
    app = app if app is not None else FluxLit()
    return build_serve_plan(
        Settings(port=8123, state_file=str(tmp_path / "state.json"), **settings),  # type: ignore[arg-type]
        LoadedTarget("app:app", app, app.api),
    )


def test_by_default_browsers_are_pinged_every_20_s_and_given_20_s_to_answer(tmp_path: Path) -> None:
    plan = plan_for(tmp_path)
    limits = plan.serve.websocket
    assert limits is not None
    assert (limits.ping_interval, limits.ping_timeout) == (20.0, 20.0)
    assert plan.serve.hypercorn_options["websocket_ping_interval"] is None  # hypercorn's own loop stays off


def test_a_ping_interval_of_0_turns_the_pings_off(tmp_path: Path) -> None:
    limits = plan_for(tmp_path, ws_ping_interval_s=0, ws_ping_timeout_s=3).serve.websocket
    assert limits is not None
    assert (limits.ping_interval, limits.ping_timeout) == (None, 3.0)


def test_browser_messages_are_capped_by_the_setting_and_streamlits_by_its_own_limit(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, max_ws_client_message_bytes=MIB)
    assert plan.serve.hypercorn_options["websocket_max_message_size"] == MIB
    assert plan.proxy is not None
    assert plan.proxy.config.ws_max_message_bytes == 200 * 10**6


def test_streamlit_run_args_raising_its_message_limit_raise_the_proxys(tmp_path: Path) -> None:
    app = FluxLit(streamlit_run_args=["--server.maxMessageSize=500"])
    plan = plan_for(tmp_path, app)
    assert plan.proxy is not None
    assert plan.proxy.config.ws_max_message_bytes == 500 * 10**6


def test_hypercorn_and_the_proxy_share_one_reassembly_budget(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, ws_reassembly_budget_bytes=64 * MIB)
    assert plan.serve.websocket is not None
    assert plan.proxy is not None
    assert plan.serve.websocket.budget is plan.reassembly_budget
    assert plan.proxy.reassembly_budget is plan.reassembly_budget
    assert plan.reassembly_budget.limit == 64 * MIB


def test_an_api_only_app_still_bounds_its_websockets(tmp_path: Path) -> None:
    api = FastAPI()
    plan = build_serve_plan(
        Settings(port=8123, state_file=str(tmp_path / "s.json")), LoadedTarget("api:api", None, api)
    )
    assert plan.proxy is None
    assert plan.serve.websocket is not None
    assert plan.serve.websocket.budget is plan.reassembly_budget


@pytest.mark.parametrize(
    ("setting", "workers", "memory", "budget"),
    [
        (128 * MIB, 1, 16 << 30, 128 * MIB),  # set: used as given
        (0, 1, 16 << 30, 4 << 30),  # a quarter of the memory
        (0, 4, 16 << 30, 1 << 30),  # shared among the gateway processes
        (0, 2, 128 * MIB, 32 * MIB),  # never below one page's worth of messages
    ],
)
def test_the_reassembly_budget_is_a_quarter_of_memory_shared_among_workers_unless_set(
    monkeypatch: pytest.MonkeyPatch, setting: int, workers: int, memory: int, budget: int
) -> None:
    import fluxlit.runtime.serve_plan

    monkeypatch.setattr(fluxlit.runtime.serve_plan, "memory_limit_bytes", lambda: memory)
    settings = Settings(ws_reassembly_budget_bytes=setting, workers=workers)
    assert reassembly_budget_bytes(settings) == budget


def test_the_default_budget_comes_from_this_machines_memory(tmp_path: Path) -> None:
    from fluxlit_supervisor import memory_limit_bytes

    assert plan_for(tmp_path).reassembly_budget.limit == max(memory_limit_bytes() // 4, 32 * MIB)
    assert serve_module.HYPERCORN_OPTIONS.get("websocket_max_message_size") is None  # set per run, from settings
