"""`fluxlit serve` composed and run in this process: the plan's parts and sockets, its routing by child state, a run."""

from __future__ import annotations

import io
import json
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from fluxlit_supervisor import UpstreamState

from fluxlit import FluxLit
from fluxlit.cli.main import main
from fluxlit.config.settings import Settings
from fluxlit.observability.logs import configure_logging
from fluxlit.runtime.addresses import internal_api_base
from fluxlit.runtime.hypercorn_options import hypercorn_options
from fluxlit.runtime.serve_command import worker_spec
from fluxlit.runtime.serve_plan import ServePlan, build_serve_plan
from fluxlit.targets import LoadedTarget
from fluxlit.testing import TestClient
from tests._inprocess import SigtermOnceHealthy
from tests._live import free_port
from tests._origin import app_with_a_page


def plan_for(app: FluxLit, tmp_path: Path, **settings: Any) -> ServePlan:
    return build_serve_plan(
        Settings(port=8123, state_file=str(tmp_path / "state.json"), **settings),
        LoadedTarget("app:app", app, app.api),
    )


def test_proxied_requests_get_503_with_retry_after_while_streamlit_starts(tmp_path: Path) -> None:
    plan = plan_for(app_with_a_page(), tmp_path)
    plan.hub.publish(UpstreamState("starting", generation=1))
    with TestClient(plan.gateway) as client:
        response = client.get("/")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"


def test_proxied_requests_go_to_the_port_the_supervisor_published(tmp_path: Path) -> None:
    plan = plan_for(app_with_a_page(), tmp_path)
    port = free_port()  # nothing listens there: the proxy says it could not connect to that very port
    plan.hub.publish(UpstreamState("ready", host="127.0.0.1", port=port, pid=1, generation=1))
    with TestClient(plan.gateway) as client:
        ready, page = client.get("/api/readyz"), client.get("/")
    assert ready.status_code == 200
    assert page.status_code == 502


def test_the_child_is_started_with_the_api_address_and_the_mount(tmp_path: Path) -> None:
    plan = plan_for(app_with_a_page(), tmp_path, root_path="/apps/demo")
    assert plan.child is not None
    argv = plan.child.argv(4321)
    assert argv[argv.index("--server.port") + 1] == "4321"
    assert plan.child.ready_path == "/apps/demo/_stcore/health"
    assert plan.child.env["FLUXLIT_INTERNAL_API_BASE"] == "http://127.0.0.1:8123/apps/demo/api"


def test_under_tls_pages_reach_the_api_on_a_private_plain_http_loopback_port() -> None:
    assert internal_api_base(Settings(root_path="/apps/x"), loopback_port=9000) == "http://127.0.0.1:9000/apps/x/api"


def test_child_output_becomes_log_lines_without_the_blank_padding(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    try:
        plan = plan_for(app_with_a_page(), tmp_path)
        plan.on_child_output("stdout", "  You can now view your Streamlit app", 42, 1)
        plan.on_child_output("stdout", "   ", 42, 1)
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["event"], line["stream"], line["pid"]) for line in lines] == [
        ("  You can now view your Streamlit app", "stdout", 42)
    ]


@pytest.mark.anyio
async def test_before_stop_turns_readiness_503(tmp_path: Path) -> None:
    plan = plan_for(app_with_a_page(), tmp_path)
    plan.hub.publish(UpstreamState("ready", host="127.0.0.1", port=free_port(), pid=1, generation=1))
    await plan.before_stop()
    with TestClient(plan.gateway) as client:
        assert client.get("/api/readyz").status_code == 503


def test_workers_beyond_the_first_follow_the_state_file(tmp_path: Path) -> None:
    settings = Settings(workers=3, graceful_timeout_s=7)
    spec = worker_spec(settings, tmp_path / "state.json")
    assert spec.count == 2
    assert spec.argv == [sys.executable, "-m", "fluxlit.runtime.gateway_worker"]
    assert spec.env["FLUXLIT_WORKER_STATE_FILE"] == str(tmp_path / "state.json")
    assert spec.stop_grace > settings.graceful_timeout_s


def write_module(tmp_path: Path, name: str, source: str) -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    return f"{tmp_path / name}.py"


@pytest.mark.usefixtures("restored_process_state")
def test_serve_runs_an_api_target_in_this_process_and_stops_on_sigterm(tmp_path: Path) -> None:
    target = write_module(
        tmp_path,
        "plain_api",
        """
        from fastapi import FastAPI

        api = FastAPI()

        @api.get("/hello")
        def hello():
            return {"hi": "there"}
        """,
    )
    port = free_port()
    args = ["serve", f"{target}:api", "--port", str(port), "--state-file", str(tmp_path / "state.json")]
    with SigtermOnceHealthy(f"http://127.0.0.1:{port}/api/hello"):
        result = CliRunner().invoke(main, [*args, "--log-format", "json"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "state.json").exists()


@pytest.mark.usefixtures("restored_process_state")
def test_a_stop_while_the_target_imports_exits_cleanly(tmp_path: Path) -> None:
    target = write_module(
        tmp_path,
        "stopped_during_import",
        """
        import os
        import signal

        from fastapi import FastAPI

        os.kill(os.getpid(), signal.SIGTERM)  # the process manager gives up while the app imports
        api = FastAPI()
        """,
    )
    result = CliRunner().invoke(main, ["serve", f"{target}:api", "--port", str(free_port())])
    assert result.exit_code == 0, result.output


# --- sockets and parser limits for the gateway's hardening settings ---


def plain_app_plan(tmp_path: Path, **values: object) -> ServePlan:
    settings = Settings(port=8123, state_file=str(tmp_path / "state.json"), **values)
    return build_serve_plan(settings, LoadedTarget("app:app", FluxLit(), FluxLit().api))


def test_the_metrics_bind_is_served_beside_the_public_one(tmp_path: Path) -> None:
    plan = plain_app_plan(tmp_path, metrics_bind="0.0.0.0:9100")
    assert list(plan.serve.binds) == ["127.0.0.1:8123", "0.0.0.0:9100"]
    assert plan.gateway.internal_access.port == 9100


def test_under_tls_the_metrics_bind_stays_plain_http(tmp_path: Path) -> None:
    plan = plain_app_plan(tmp_path, metrics_bind="0.0.0.0:9100", certfile="c.pem", keyfile="k.pem")
    assert list(plan.serve.binds) == ["127.0.0.1:8123"]
    plain = plan.serve.hypercorn_options["insecure_bind"]
    assert plain[-1] == "0.0.0.0:9100"
    assert plain[0].startswith("127.0.0.1:")  # the pages' loopback API bind comes first


def test_without_a_metrics_bind_only_the_public_binds_listen(tmp_path: Path) -> None:
    plan = plain_app_plan(tmp_path)
    assert list(plan.serve.binds) == ["127.0.0.1:8123"]
    assert "insecure_bind" not in plan.serve.hypercorn_options
    assert plan.gateway.internal_access.port is None


def test_an_api_only_app_still_serves_its_metrics_bind(tmp_path: Path) -> None:
    settings = Settings(port=8123, metrics_bind="127.0.0.1:9100", state_file=str(tmp_path / "s.json"))
    plan = build_serve_plan(settings, LoadedTarget("api:api", None, FastAPI()))
    assert list(plan.serve.binds) == ["127.0.0.1:8123", "127.0.0.1:9100"]


def test_with_metrics_off_the_metrics_path_is_just_another_page_for_streamlit(tmp_path: Path) -> None:
    plan = plan_for(app_with_a_page(), tmp_path, metrics=False)
    assert plan.gateway_metrics is None
    response = TestClient(plan.gateway).get("/__fluxlit/metrics")
    assert (response.status_code, response.text) == (503, "Streamlit is starting\n")


def test_the_parsers_limits_sit_above_the_gateways_own() -> None:
    """h11 and h2 are only a memory backstop: the gateway's exact count decides (h11 issue 182)."""
    settings = Settings(max_url_bytes=8192, max_header_bytes=65536)
    options = hypercorn_options(settings)
    assert options["h11_max_incomplete_size"] > settings.max_url_bytes + settings.max_header_bytes
    assert options["h2_max_header_list_size"] > options["h11_max_incomplete_size"]
    bigger = hypercorn_options(Settings(max_header_bytes=1 << 20))
    assert bigger["h11_max_incomplete_size"] > 1 << 20
    assert options["accesslog"] is None


# --- the proxy's pool settings ---


def test_the_proxy_pool_expires_idle_connections_after_the_configured_seconds(tmp_path: Path) -> None:
    app = FluxLit()
    settings = Settings(port=8123, state_file=str(tmp_path / "state.json"), upstream_pool_idle_timeout_s=2.5)
    plan = build_serve_plan(settings, LoadedTarget("app:app", app, app.api))
    assert plan.proxy is not None
    assert plan.proxy.config.pool_idle_timeout == 2.5


def test_by_default_pooled_connections_expire_before_streamlits_five_second_keep_alive(tmp_path: Path) -> None:
    app = FluxLit()
    plan = build_serve_plan(
        Settings(port=8123, state_file=str(tmp_path / "s.json")), LoadedTarget("app:app", app, app.api)
    )
    assert plan.proxy is not None
    assert plan.proxy.config.pool_idle_timeout < 5.0


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("0.0.0.0", "http://127.0.0.1:8123/api"),
        ("::", "http://[::1]:8123/api"),
        ("10.0.0.2", "http://10.0.0.2:8123/api"),
    ],
)
def test_pages_reach_an_any_address_bind_over_loopback(host: str, base: str) -> None:
    assert internal_api_base(Settings(host=host, port=8123)) == base


def test_an_api_only_target_is_ready_without_streamlit(tmp_path: Path) -> None:
    api = FastAPI()
    settings = Settings(port=8123, state_file=str(tmp_path / "state.json"))
    plan = build_serve_plan(settings, LoadedTarget("api_only:api", None, api))
    assert plan.proxy is None
    with TestClient(plan.gateway) as client:
        response = client.get("/api/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready", "streamlit": "not_configured"})
