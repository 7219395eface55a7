"""An external Streamlit upstream (FLUXLIT_STREAMLIT_UPSTREAM, --streamlit-upstream, the state file): which URL
wins, how it is re-read, and what /api/readyz and proxied requests answer, against real loopback HTTP servers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from fluxlit_supervisor import UpstreamState
from fluxlit_supervisor.state_file import ResolvedUpstream, resolve_upstream
from fluxlit_supervisor.workers import FDS_ENV, INDEX_ENV

from fluxlit import FluxLit
from fluxlit.cli.main import main
from fluxlit.config.parsers import UpstreamAddress, parse_upstream_url, upstream_address
from fluxlit.config.settings import SETTING_SPECS, Settings
from fluxlit.config.sources import load_settings
from fluxlit.errors import ConfigError
from fluxlit.gateway.external_upstream import (
    FILE_ENV,
    PROBE_CACHE_S,
    URL_ENV,
    ExternalUpstream,
    UpstreamLocator,
    external_upstream,
    probe_root,
)
from fluxlit.gateway.router import build_gateway
from fluxlit.runtime.early_start import streamlit_started_early
from fluxlit.runtime.gateway_worker import main as worker_main
from fluxlit.runtime.serve_plan import ProbeAfterConnectFailure, build_serve_plan
from fluxlit.runtime.worker_handoff import SETTINGS_ENV, STATE_FILE_ENV, handoff_environment, settings_to_json
from fluxlit.targets import LoadedTarget
from fluxlit.testing import FluxLitTestClient, TestClient
from tests._inprocess import SigtermOnceHealthy
from tests._logs import JsonLog


class TinyUpstream:
    """A real HTTP server on a free loopback port: answers every GET with `status` and the path, counting them."""

    def __init__(self, status: int = 200, delay_s: float = 0.0) -> None:
        self.status = status
        self.delay_s = delay_s
        self.paths: list[str] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                upstream.paths.append(self.path)
                time.sleep(upstream.delay_s)
                body = f"upstream saw {self.path}".encode()
                self.send_response(upstream.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> TinyUpstream:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def dead_url() -> str:
    """A loopback URL nobody listens on (the port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def upstream_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Neither variable set, whatever the shell running the tests has; set them with the returned monkeypatch."""
    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.delenv(FILE_ENV, raising=False)
    return monkeypatch


@pytest.fixture
def live_upstream() -> Iterator[TinyUpstream]:
    with TinyUpstream() as server:
        yield server


def readyz(client: FluxLitTestClient) -> httpx.Response:
    return client.api_get("/readyz")


# --- which URL wins ----------------------------------------------------------------------------------------------


def test_no_upstream_set_answers_ready_not_configured(upstream_env: pytest.MonkeyPatch) -> None:
    response = readyz(FluxLitTestClient(FluxLit()))
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "streamlit": "not_configured"}


def test_the_env_url_is_probed_by_readyz(upstream_env: pytest.MonkeyPatch, live_upstream: TinyUpstream) -> None:
    upstream_env.setenv(URL_ENV, live_upstream.url + "/")
    response = readyz(FluxLitTestClient(FluxLit()))
    assert response.status_code == 200
    assert response.json()["streamlit"] == "ok"
    assert live_upstream.paths == ["/"]


def test_a_file_naming_an_upstream_wins_over_the_env_url(
    upstream_env: pytest.MonkeyPatch, live_upstream: TinyUpstream, tmp_path: Path
) -> None:
    state = tmp_path / "upstream.txt"
    state.write_text(live_upstream.url)  # the reference's plain format, no newline
    upstream_env.setenv(FILE_ENV, str(state))
    upstream_env.setenv(URL_ENV, dead_url())
    assert readyz(FluxLitTestClient(FluxLit())).status_code == 200


def test_an_empty_file_leaves_the_env_url_in_charge(
    upstream_env: pytest.MonkeyPatch, live_upstream: TinyUpstream, tmp_path: Path
) -> None:
    state = tmp_path / "upstream.txt"
    state.write_text("  \n")
    upstream_env.setenv(FILE_ENV, str(state))
    upstream_env.setenv(URL_ENV, live_upstream.url)
    assert readyz(FluxLitTestClient(FluxLit())).status_code == 200


def test_a_missing_file_falls_back_to_the_env_url(
    upstream_env: pytest.MonkeyPatch, live_upstream: TinyUpstream, tmp_path: Path
) -> None:
    upstream_env.setenv(FILE_ENV, str(tmp_path / "gone.txt"))
    upstream_env.setenv(URL_ENV, live_upstream.url)
    assert readyz(FluxLitTestClient(FluxLit())).status_code == 200


def test_a_missing_file_and_no_url_is_not_configured(upstream_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    upstream_env.setenv(FILE_ENV, str(tmp_path / "gone.txt"))
    response = readyz(FluxLitTestClient(FluxLit()))
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "streamlit": "not_configured"}


@pytest.mark.parametrize(
    "stale",
    [
        UpstreamState("stopped", host="127.0.0.1", port=1, detail="stopped on request"),
        UpstreamState("ready", host="127.0.0.1", port=1, pid=2**22 + 4321),  # its child pid is gone
    ],
    ids=["stopped", "dead-pid"],
)
def test_a_stale_file_falls_back_to_the_env_url(
    upstream_env: pytest.MonkeyPatch, live_upstream: TinyUpstream, tmp_path: Path, stale: UpstreamState
) -> None:
    state = tmp_path / "upstream.json"
    state.write_text(stale.to_json())
    upstream_env.setenv(FILE_ENV, str(state))
    upstream_env.setenv(URL_ENV, live_upstream.url)
    assert readyz(FluxLitTestClient(FluxLit())).status_code == 200


def test_a_rewritten_file_is_followed_at_once(upstream_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    state = tmp_path / "upstream.txt"
    with TinyUpstream() as first, TinyUpstream(status=500) as second:
        state.write_text(first.url)
        upstream_env.setenv(FILE_ENV, str(state))
        client = FluxLitTestClient(FluxLit())
        assert readyz(client).status_code == 200
        state.write_text(second.url)  # same size, same inode, same second: still seen
        assert readyz(client).status_code == 503
        assert second.paths == ["/"]


def test_the_app_settings_name_an_upstream_when_the_environment_does_not(
    upstream_env: pytest.MonkeyPatch, live_upstream: TinyUpstream
) -> None:
    client = FluxLitTestClient(FluxLit(settings=Settings(streamlit_upstream=live_upstream.url)))
    assert readyz(client).status_code == 200


def test_a_bad_env_url_fails_naming_the_variable(upstream_env: pytest.MonkeyPatch) -> None:
    upstream_env.setenv(URL_ENV, "127.0.0.1:8501")
    with pytest.raises(ConfigError, match=r"FLUXLIT_STREAMLIT_UPSTREAM='127\.0\.0\.1:8501'.*http://127\.0\.0\.1:8501"):
        FluxLitTestClient(FluxLit())


def test_a_file_naming_an_https_upstream_is_not_ready_and_says_why(
    upstream_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    state = tmp_path / "upstream.txt"
    state.write_text("https://127.0.0.1:8443")
    upstream_env.setenv(FILE_ENV, str(state))
    response = readyz(FluxLitTestClient(FluxLit()))
    assert response.status_code == 503
    assert response.json()["streamlit"] == "invalid"
    assert "plain HTTP" in response.json()["detail"]


# --- readiness and proxying ----------------------------------------------------------------------------------------


def test_a_dead_upstream_is_not_ready_with_retry_after(upstream_env: pytest.MonkeyPatch) -> None:
    url = dead_url()
    upstream_env.setenv(URL_ENV, url)
    response = readyz(FluxLitTestClient(FluxLit()))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json()["streamlit"] == "unreachable"
    assert url.removeprefix("http://") in response.json()["detail"]


@pytest.mark.parametrize("status", [404, 302, 500])
def test_a_root_that_is_not_2xx_is_not_ready(upstream_env: pytest.MonkeyPatch, status: int) -> None:
    with TinyUpstream(status=status) as server:
        upstream_env.setenv(URL_ENV, server.url)
        response = readyz(FluxLitTestClient(FluxLit()))
    assert response.status_code == 503
    assert response.json()["streamlit"] == "unhealthy"
    assert f"answered {status}" in response.json()["detail"]


def test_the_probe_asks_the_root_under_the_url_path_and_the_mount(upstream_env: pytest.MonkeyPatch) -> None:
    with TinyUpstream() as server:
        upstream_env.setenv(URL_ENV, server.url + "/st/")
        client = FluxLitTestClient(FluxLit(), root_mount="/apps/demo")
        assert readyz(client).status_code == 200
        page = client.api.get("/apps/demo/some/page?x=1")
    assert server.paths == ["/st/apps/demo/", "/st/apps/demo/some/page?x=1"]
    assert page.text == "upstream saw /st/apps/demo/some/page?x=1"


def test_proxied_requests_reach_a_live_upstream(upstream_env: pytest.MonkeyPatch, live_upstream: TinyUpstream) -> None:
    upstream_env.setenv(URL_ENV, live_upstream.url)
    response = FluxLitTestClient(FluxLit()).api.get("/_stcore/health")
    assert response.status_code == 200
    assert response.text == "upstream saw /_stcore/health"


def test_an_upstream_that_answers_not_2xx_is_still_proxied(upstream_env: pytest.MonkeyPatch) -> None:
    with TinyUpstream(status=404) as server:
        upstream_env.setenv(URL_ENV, server.url)
        response = FluxLitTestClient(FluxLit()).api.get("/missing")
    assert response.status_code == 404
    assert response.text == "upstream saw /missing"


def test_proxied_requests_to_a_dead_upstream_answer_503_with_retry_after(upstream_env: pytest.MonkeyPatch) -> None:
    upstream_env.setenv(URL_ENV, dead_url())
    response = FluxLitTestClient(FluxLit()).api.get("/")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"


def test_a_readiness_storm_probes_the_upstream_once_a_second(
    upstream_env: pytest.MonkeyPatch, live_upstream: TinyUpstream
) -> None:
    upstream_env.setenv(URL_ENV, live_upstream.url)
    client = FluxLitTestClient(FluxLit())
    started = time.monotonic()
    codes = {readyz(client).status_code for _ in range(50)}
    assert codes == {200}
    if time.monotonic() - started < PROBE_CACHE_S:  # a slow machine may legitimately need a second probe
        assert live_upstream.paths == ["/"]


@pytest.mark.anyio
async def test_concurrent_readiness_requests_share_one_probe(upstream_env: pytest.MonkeyPatch) -> None:
    with TinyUpstream(delay_s=0.2) as server:
        upstream_env.setenv(URL_ENV, server.url)
        gateway = build_gateway(FluxLit())
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            answers = await asyncio.gather(*(client.get("/api/readyz") for _ in range(20)))
    assert [a.status_code for a in answers] == [200] * 20
    assert server.paths == ["/"]


# --- the probe itself --------------------------------------------------------------------------------------------


class SilentServer:
    """Accepts on loopback and then says nothing (`close` False) or hangs up at once (`close` True)."""

    def __init__(self, *, close: bool = False, answer: bytes = b"") -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.close = close
        self.answer = answer
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        with self.listener:
            conn, _ = self.listener.accept()
            if self.answer:
                conn.recv(4096)
                conn.sendall(self.answer)
            if self.close:
                conn.close()
            else:
                self.held.append(conn)

    def __enter__(self) -> UpstreamAddress:
        self.thread.start()
        return UpstreamAddress("127.0.0.1", self.port)

    def __exit__(self, *exc: object) -> None:
        self.thread.join(timeout=5)
        for conn in self.held:
            conn.close()


@pytest.mark.anyio
async def test_a_probe_unanswered_in_time_is_unhealthy() -> None:
    with SilentServer() as address:
        assert await probe_root(address, "/", 0.2) == (
            "unhealthy",
            f"GET / on 127.0.0.1:{address.port} did not answer within 0.2s",
        )


@pytest.mark.anyio
async def test_a_probe_hung_up_on_is_unhealthy() -> None:
    with SilentServer(close=True) as address:
        state, detail = await probe_root(address, "/", 2.0)
    assert (state, "closed before an answer" in detail) == ("unhealthy", True)


@pytest.mark.anyio
async def test_a_probe_answered_without_a_status_line_is_unhealthy() -> None:
    with SilentServer(close=True, answer=b"SSH-2.0-OpenSSH\r\n") as address:
        state, detail = await probe_root(address, "/", 2.0)
    assert (state, detail.endswith("answered no HTTP status line")) == ("unhealthy", True)


@pytest.mark.anyio
async def test_a_probe_that_cannot_connect_in_time_is_unreachable() -> None:
    # A listener that never accepts, its backlog full: the next SYN is dropped and the connect hangs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        await asyncio.sleep(0.05)
        state, detail = await probe_root(UpstreamAddress("127.0.0.1", port), "/", 0.3)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert (state, detail) == ("unreachable", f"cannot connect to 127.0.0.1:{port} within 0.3s")


# --- re-reading the file -------------------------------------------------------------------------------------------


def test_the_locator_reads_a_settled_unchanged_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "upstream.txt"
    state.write_text("http://127.0.0.1:8501/")
    old = time.time() - 10
    os.utime(state, (old, old))
    locate = UpstreamLocator(str(state), None)
    assert locate().url == "http://127.0.0.1:8501"
    reads: list[str | None] = []

    def counting_resolve(file_path: str | None, env_url: str | None) -> ResolvedUpstream:
        reads.append(file_path)
        return resolve_upstream(file_path, env_url)

    monkeypatch.setattr("fluxlit.gateway.external_upstream.resolve_upstream", counting_resolve)
    assert [locate().url for _ in range(3)] == ["http://127.0.0.1:8501"] * 3
    assert reads == []
    state.write_text("http://127.0.0.1:8502")
    assert locate().url == "http://127.0.0.1:8502"
    assert reads == [str(state)]


def test_the_locator_logs_each_change_of_answer_once(tmp_path: Path, log_stream: JsonLog) -> None:
    state = tmp_path / "upstream.txt"
    locate = UpstreamLocator(str(state), "http://127.0.0.1:9000")
    assert [locate().source for _ in range(2)] == ["env", "env"]
    state.write_text("http://127.0.0.1:8501")
    assert locate().source == "file"
    events = [e for e in log_stream.lines() if e["event"].startswith("fluxlit.upstream")]
    assert [e["event"] for e in events] == ["fluxlit.upstream_file_passed_over", "fluxlit.upstream_resolved"]
    assert events[0]["problem"] == "it does not exist"


def test_the_locator_without_a_file_answers_the_env_url() -> None:
    locate = UpstreamLocator(None, "http://127.0.0.1:9000")
    assert (locate().url, locate().source) == ("http://127.0.0.1:9000", "env")


@pytest.mark.anyio
async def test_a_changed_url_is_probed_again_before_the_cache_expires(tmp_path: Path) -> None:
    state = tmp_path / "upstream.txt"
    with TinyUpstream() as first, TinyUpstream() as second:
        state.write_text(first.url)
        upstream = ExternalUpstream(UpstreamLocator(str(state), None), cache_s=60)
        assert upstream().state == "starting"
        await upstream.refresh()
        await upstream.refresh()
        state.write_text(second.url)
        await upstream.refresh()
    assert (upstream().state, upstream().port, upstream.probes) == ("ready", second.port, 2)


# --- the setting and `fluxlit serve` -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("http://127.0.0.1:8501/", "http://127.0.0.1:8501"),
        ("http://[::1]:8501/st/", "http://[::1]:8501/st"),
        ("http://streamlit.internal:80", "http://streamlit.internal:80"),
    ],
)
def test_the_upstream_url_setting_accepts_http_host_port_and_path(text: str, expected: str) -> None:
    assert parse_upstream_url(text, URL_ENV) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("127.0.0.1:8501", "http://HOST:PORT"),
        ("http://127.0.0.1", "http://HOST:PORT"),
        ("http://127.0.0.1:0", "http://HOST:PORT"),
        ("http://127.0.0.1:99999", "http://HOST:PORT"),
        ("http://user@127.0.0.1:8501", "http://HOST:PORT"),
        ("http://127.0.0.1:8501/?x=1", "no query"),
        ("http://127.0.0.1:8501/a b", "percent-encode"),
        ("https://127.0.0.1:8501", "plain HTTP"),
    ],
)
def test_a_bad_upstream_url_names_the_value_and_the_fix(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"FLUXLIT_STREAMLIT_UPSTREAM={text!r} is not valid")) as raised:
        parse_upstream_url(text, URL_ENV)
    assert why in str(raised.value)


def test_upstream_address_splits_host_port_and_path() -> None:
    assert upstream_address("http://[::1]:8501/st", URL_ENV) == UpstreamAddress("::1", 8501, "/st")


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for spec in SETTING_SPECS:
        monkeypatch.delenv(spec.env, raising=False)
    return CliRunner()


def test_serve_with_a_bad_upstream_flag_exits_2_naming_it(runner: CliRunner) -> None:
    result = runner.invoke(main, ["serve", "--streamlit-upstream", "localhost:8501"])
    assert result.exit_code == 2
    assert "--streamlit-upstream='localhost:8501'" in result.output
    assert "http://127.0.0.1:8501" in result.output


def test_the_flag_wins_over_the_env_var(tmp_path: Path) -> None:
    resolved = load_settings(
        {"streamlit_upstream": "http://10.0.0.2:8501"}, env={URL_ENV: "http://10.0.0.1:8501"}, project_dir=tmp_path
    )
    assert (resolved.settings.streamlit_upstream, resolved.sources["streamlit_upstream"]) == (
        "http://10.0.0.2:8501",
        "cli",
    )


def ui_target() -> LoadedTarget:
    app = FluxLit()

    @app.page("/")
    def home() -> None:
        pass

    return LoadedTarget("app:app", app, app.api)


def test_a_run_with_an_external_upstream_starts_no_child_and_owns_no_state_file(tmp_path: Path) -> None:
    settings = Settings(port=8123, streamlit_upstream="http://127.0.0.1:8501", state_file=str(tmp_path / "s.json"))
    plan = build_serve_plan(settings, ui_target())
    assert (plan.child, plan.state_file) == (None, None)
    assert plan.proxy is not None
    assert plan.gateway.upstream_refresh is not None


def test_a_bare_api_target_still_fronts_an_external_upstream(tmp_path: Path, live_upstream: TinyUpstream) -> None:
    from fastapi import FastAPI

    api = FastAPI()
    plan = build_serve_plan(Settings(port=8123, streamlit_upstream=live_upstream.url), LoadedTarget("m:api", None, api))
    assert plan.child is None
    with TestClient(plan.gateway) as client:
        assert client.get("/api/readyz").json()["streamlit"] == "ok"
        assert client.get("/page").text == "upstream saw /page"


def test_after_a_failed_connect_the_next_proxied_request_probes_again_and_gets_503(tmp_path: Path) -> None:
    with TinyUpstream() as server:
        plan = build_serve_plan(Settings(port=8123, streamlit_upstream=server.url), ui_target())
        client = TestClient(plan.gateway)
        assert client.get("/api/readyz").status_code == 200  # the cached view: ready for a second
    died = client.get("/page")  # the connect fails: the proxy's own answer, and the cache is dropped
    after = client.get("/page")
    assert (died.status_code, after.status_code, after.headers["retry-after"]) == (502, 503, "2")
    assert plan.gateway.upstream_status().state == "unreachable"


def test_the_connect_failure_hooks_pass_every_event_on_to_the_metrics(tmp_path: Path) -> None:
    plan = build_serve_plan(Settings(port=8123, streamlit_upstream=dead_url()), ui_target())
    assert plan.proxy is not None
    hooks = plan.proxy._hooks
    assert isinstance(hooks, ProbeAfterConnectFailure)
    assert hooks.external is plan.gateway.upstream_status
    metrics = plan.gateway_metrics
    assert metrics is not None
    for kind in ("connect", "timeout"):
        hooks.upstream_error(kind)
    hooks.pool_changed(1, 2)
    hooks.websocket_opened()
    hooks.websocket_message("upstream", 10)
    hooks.websocket_closed(1000, 0.5)
    sample = metrics.registry.get_sample_value
    assert sample("fluxlit_proxy_upstream_errors_total", {"kind": "connect"}) == 1
    assert sample("fluxlit_proxy_upstream_errors_total", {"kind": "timeout"}) == 1
    assert sample("fluxlit_proxy_pool_connections", {"state": "in_use"}) == 2
    assert sample("fluxlit_websocket_messages_total", {"direction": "upstream"}) == 1
    assert sample("fluxlit_websocket_connections") == 0  # opened, then closed


def test_a_run_with_an_external_upstream_reads_its_state_file_first(
    tmp_path: Path, live_upstream: TinyUpstream
) -> None:
    state = tmp_path / "upstream.txt"
    state.write_text(live_upstream.url)
    settings = Settings(streamlit_upstream=dead_url(), state_file=str(state))
    upstream = external_upstream(settings)
    assert asyncio.run(_refreshed_state(upstream)) == "ready"


async def _refreshed_state(upstream: ExternalUpstream) -> str:
    await upstream.refresh()
    return upstream().state


def test_streamlit_is_not_started_early_for_an_external_upstream(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("app = None\n")
    resolved = load_settings(
        {"target": f"{tmp_path / 'app.py'}:app", "streamlit_upstream": "http://127.0.0.1:8501"},
        env={},
        project_dir=tmp_path,
    )
    with streamlit_started_early(resolved) as early:
        assert early is None


def test_workers_of_an_external_run_get_no_state_file() -> None:
    env = handoff_environment(Settings(streamlit_upstream="http://127.0.0.1:8501"), None)
    assert STATE_FILE_ENV not in env


@pytest.mark.usefixtures("restored_process_state")
def test_a_worker_of_an_external_run_follows_that_streamlit_without_a_state_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, live_upstream: TinyUpstream
) -> None:
    """In this process, as `python -m fluxlit.runtime.gateway_worker` runs: readyz is 200 only through the probe."""
    (tmp_path / "worker_api.py").write_text("from fastapi import FastAPI\n\napi = FastAPI()\n")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    fd = listener.detach()  # the worker's hypercorn owns and closes it, as with a passed fd
    settings = Settings(
        target=f"{tmp_path / 'worker_api.py'}:api", port=port, log_format="json", streamlit_upstream=live_upstream.url
    )
    monkeypatch.setenv(SETTINGS_ENV, settings_to_json(settings))
    monkeypatch.delenv(STATE_FILE_ENV, raising=False)
    monkeypatch.setenv(FDS_ENV, json.dumps({"secure": [], "insecure": [fd]}))
    monkeypatch.setenv(INDEX_ENV, "1")
    with SigtermOnceHealthy(f"http://127.0.0.1:{port}/api/readyz"):
        assert worker_main() == 0
    assert live_upstream.paths[:1] == ["/"]
