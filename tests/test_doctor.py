"""`fluxlit doctor`: each broken set-up gets the right verdict and a fix that says what to do."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fluxlit.doctor.model import Check, DoctorContext, Status, check_name
from fluxlit.doctor.registry import (
    LIVE_CHECKS,
    OFFLINE_CHECKS,
    describe_checks,
    doctor,
    exit_code,
    render_text,
    run_checks,
)
from fluxlit.doctor.ws_probe import websocket_handshake

SMOKE_APP = Path(__file__).resolve().parent.parent / "examples" / "smoke_app" / "app.py"
CLEAN_ENV = {"FLUXLIT_GATEWAY_PORT": "0"}
TEST_APP_PREFIX = "doctor_case_"
NGINX_UPGRADE = 'proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";'

APP_HEADER = "from fluxlit import FluxLit\napp = FluxLit()\n"
CLASHING_PAGES = APP_HEADER + (
    "@app.page('/reports')\ndef one(st, client): pass\n@app.page('/reports/')\ndef two(st, client): pass\n"
)
PAGE_UNDER_API = APP_HEADER + "@app.page('/api')\ndef api_page(st, client): pass\n"
NOT_AN_APP = "app = 42\n"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No project file, no FLUXLIT_* from the shell; sys.path and the test apps' modules undone afterwards."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith(("FLUXLIT_", "STREAMLIT_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith(TEST_APP_PREFIX)]:
        del sys.modules[name]


def run_doctor(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(doctor, [*args, "--json"], env={**CLEAN_ENV, **(env or {})})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.output)


def verdict(report: dict[str, Any], name: str) -> dict[str, str]:
    return next(check for check in report["checks"] if check["name"] == name)


def write_app(tmp_path: Path, name: str, source: str) -> str:
    (tmp_path / f"{name}.py").write_text(source)
    return f"{name}.py:app"


@pytest.mark.parametrize(
    ("source", "target", "env", "check", "status", "detail", "fix"),
    [
        pytest.param(
            None, "no_such_module_xyz:app", {}, "target", "FAIL", "no module named", "FLUXLIT_APP", id="bad-target"
        ),
        pytest.param(
            NOT_AN_APP, None, {}, "target", "FAIL", "is a int, not a FluxLit app", "module:attr", id="not-an-app"
        ),
        pytest.param(CLASHING_PAGES, None, {}, "pages", "FAIL", "clashes with", "its own path", id="clashing-pages"),
        pytest.param(CLASHING_PAGES, None, {}, "target", "FAIL", "ValueError", "TARGET", id="clash-fails-import"),
        pytest.param(PAGE_UNDER_API, None, {}, "pages", "FAIL", "under '/api'", "outside '/api'", id="page-under-api"),
        pytest.param(
            None, None, {"FLUXLIT_API_MOUNT_PATH": "api"}, "settings", "FAIL", "must start with '/': try '/api'",
            "fluxlit config", id="wrong-prefix",
        ),
        pytest.param(
            None, None, {"FLUXLIT_GATEWAY_UPSTREAM_READ_TIMEOUT_S": "1"}, "upstream_timeouts", "WARN", "under 5 s",
            "raise it to 30", id="short-read-timeout",
        ),
        pytest.param(
            None, None, {"FLUXLIT_GRACEFUL_TIMEOUT_S": "0"}, "graceful_timeout", "WARN", "cut off at once",
            "--graceful-timeout", id="no-drain",
        ),
        pytest.param(
            None, None, {"FLUXLIT_GRACEFUL_TIMEOUT_S": "60"}, "graceful_timeout", "WARN", "terminationGracePeriod",
            "lower it", id="drain-longer-than-k8s",
        ),
        pytest.param(
            None, None, {"FLUXLIT_GATEWAY_MAX_PROXY_REQUEST_BODY_BYTES": "1048576"}, "body_limit", "WARN",
            "server.maxUploadSize=200 MB", "above 209715200 bytes", id="body-limit-below-uploads",
        ),
        pytest.param(
            None, None, {"FLUXLIT_STREAMLIT_UPSTREAM_FILE": "/nonexistent-dir-xyz/state.json"}, "state_file", "FAIL",
            "/nonexistent-dir-xyz", "writable directory", id="state-dir-missing",
        ),
    ],
)  # fmt: skip
def test_broken_setup_gets_verdict_and_fix(
    isolated: Path,
    source: str | None,
    target: str | None,
    env: dict[str, str],
    check: str,
    status: str,
    detail: str,
    fix: str,
) -> None:
    if source is not None:
        target = write_app(isolated, f"{TEST_APP_PREFIX}{abs(hash(source)) % 10**8}", source)
    code, report = run_doctor(target or str(SMOKE_APP) + ":app", env=env)
    found = verdict(report, check)
    assert found["status"] == status, found
    assert detail in found["detail"], found
    assert fix in found["fix"], found
    assert code == (1 if status == "FAIL" else 0)


def test_healthy_offline_setup_passes_everything() -> None:
    code, report = run_doctor(f"{SMOKE_APP}:app")
    assert code == 0
    assert report["status"] == "PASS"
    assert {check["status"] for check in report["checks"]} == {"PASS"}
    assert [check["name"] for check in report["checks"]] == [check_name(fn) for fn in OFFLINE_CHECKS]


def test_port_in_use_fails_with_the_fix() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, report = run_doctor(f"{SMOKE_APP}:app", env={"FLUXLIT_GATEWAY_PORT": str(port)})
    found = verdict(report, "port")
    assert (code, found["status"]) == (1, "FAIL")
    assert f"127.0.0.1:{port}" in found["detail"]
    assert f"sport = :{port}" in found["fix"]


def test_streamlit_config_upload_limit_is_read(isolated: Path) -> None:
    (isolated / ".streamlit").mkdir()
    (isolated / ".streamlit" / "config.toml").write_text("[server]\nmaxUploadSize = 1\n")
    _, report = run_doctor(f"{SMOKE_APP}:app", env={"FLUXLIT_GATEWAY_MAX_PROXY_REQUEST_BODY_BYTES": "2000000"})
    assert verdict(report, "body_limit")["status"] == "PASS"


def test_text_output_reads_status_name_detail_fix() -> None:
    text = render_text([Check("a", Status.PASS, "fine"), Check("b", Status.WARN, "meh", "do x")])
    assert text.splitlines()[:2] == ["PASS  a: fine", "WARN  b: meh (fix: do x)"]
    assert "WARN: 1 passed, 1 warning(s), 0 failed" in text


def test_strict_turns_warnings_into_exit_1() -> None:
    warned = [Check("a", Status.PASS, ""), Check("b", Status.WARN, "", "x")]
    assert exit_code(warned, strict=False) == 0
    assert exit_code(warned, strict=True) == 1
    result = CliRunner().invoke(doctor, [f"{SMOKE_APP}:app", "--strict"], env={"FLUXLIT_GRACEFUL_TIMEOUT_S": "0"})
    assert result.exit_code == 1
    assert "WARN  graceful_timeout:" in result.output


def test_warnings_only_prints_the_failures_but_exits_0(tmp_path: Path) -> None:
    target = write_app(tmp_path, TEST_APP_PREFIX + "not_an_app", NOT_AN_APP)
    code, report = run_doctor(target, "--warnings-only", "--strict")
    assert code == 0
    assert verdict(report, "target")["status"] == "FAIL"
    # The reference's JSON: the overall status reads "warn" when --warnings-only let failures through.
    assert (report["status"], report["warnings_only"], report["target"]) == ("WARN", True, target)
    result = CliRunner().invoke(doctor, [target, "--warnings-only"], env=CLEAN_ENV)
    assert result.exit_code == 0
    assert "FAIL  target:" in result.output


def test_without_warnings_only_the_json_says_so_and_a_failure_exits_1(tmp_path: Path) -> None:
    target = write_app(tmp_path, TEST_APP_PREFIX + "not_an_app_either", NOT_AN_APP)
    code, report = run_doctor(target)
    assert (code, report["status"], report["warnings_only"]) == (1, "FAIL", False)
    assert "verbose" not in report


def test_warnings_only_wins_over_strict() -> None:
    results = [Check("a", Status.WARN, "", "x"), Check("b", Status.FAIL, "", "y")]
    assert exit_code(results, strict=True) == 1
    assert exit_code(results, strict=True, warnings_only=True) == 0


def test_verbose_adds_the_effective_configuration_to_the_text_and_the_json() -> None:
    code, report = run_doctor(f"{SMOKE_APP}:app", "-v")
    assert code == 0
    assert report["verbose"]["resolved_target"] == f"{SMOKE_APP}:app"
    result = CliRunner().invoke(doctor, [f"{SMOKE_APP}:app", "--verbose"], env=CLEAN_ENV)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    header = lines.index("--- Verbose (effective configuration; secrets redacted) ---")
    assert lines[header - 1] == ""
    assert 'effective.api_mount_path: "/api"' in lines[header:]


def test_url_must_be_http() -> None:
    result = CliRunner().invoke(doctor, ["--url", "127.0.0.1:8000"])
    assert result.exit_code == 2
    assert "must start with http://" in result.output


def test_a_crashing_check_is_a_failure_not_a_crash() -> None:
    def check_broken(ctx: DoctorContext) -> Check:
        raise RuntimeError("boom")

    [result] = run_checks(DoctorContext(), [check_broken])
    assert (result.name, result.status) == ("broken", Status.FAIL)
    assert "RuntimeError: boom" in result.detail


def test_every_check_reports_under_its_registry_name_and_is_documented() -> None:
    ctx = DoctorContext(target_arg=f"{SMOKE_APP}:app", env=CLEAN_ENV, url="http://127.0.0.1:9")
    for function in OFFLINE_CHECKS + LIVE_CHECKS:
        assert function(ctx).name == check_name(function)
    docs = describe_checks()
    assert len({row["name"] for row in docs}) == len(docs)
    assert all(row["checks"] for row in docs)


# --- live checks against local stand-ins -------------------------------------------------------------------


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def fake_fluxlit(*, script: str = "./static/app.js", websocket: str = "accept") -> type[BaseHTTPRequestHandler]:
    """A stand-in gateway: FluxLit's health answers, a Streamlit-like page, and a WebSocket endpoint whose
    handshake is accepted, answered like a request that lost its Upgrade header, or refused by a proxy."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def reply(self, status: int, body: bytes, kind: str, *, fluxlit: bool = True) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            if fluxlit:
                self.send_header("X-Request-ID", "fake")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.removeprefix("/sub").lstrip("/")
            if path == "api/healthz":
                self.reply(200, b'{"status":"ok"}', "application/json")
            elif path == "api/readyz":
                self.reply(200, b'{"status":"ready","streamlit":"ok","generation":1}', "application/json")
            elif path == "":
                page = f'<html><script type="module" src="{script}"></script></html>'.encode()
                self.reply(200, page, "text/html")
            elif path == "static/app.js":
                self.reply(200, b"console.log(1)", "text/javascript")
            elif path == "_stcore/stream":
                self.websocket()
            else:
                self.reply(404, b"not found", "text/plain")

        def websocket(self) -> None:
            upgrade = self.headers.get("Upgrade", "").lower() == "websocket"
            if websocket == "accept" and upgrade:
                key = self.headers["Sec-WebSocket-Key"]
                accept = base64.b64encode(
                    hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
                ).decode()
                self.send_response(101)
                for name, value in (
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Accept", accept),
                    ("Sec-WebSocket-Protocol", "streamlit"),
                ):
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.flush()
                self.connection.settimeout(2)
                self.connection.recv(1024)  # the client's close frame
                self.close_connection = True
            elif websocket == "proxy-refuses":
                self.reply(400, b"Bad Request", "text/html", fluxlit=False)
            else:  # what FluxLit answers when the request reached it without the Upgrade header
                self.reply(200, b"<html>streamlit</html>", "text/html")

    return Handler


@pytest.fixture
def live_fake() -> Iterator[Callable[..., str]]:
    servers: list[Iterator[str]] = []

    def start(**kwargs: Any) -> str:
        server = serve(fake_fluxlit(**kwargs))
        servers.append(server)
        return next(server)

    yield start
    for server in servers:
        for _ in server:
            pass


def live_report(url: str) -> dict[str, Check]:
    ctx = DoctorContext(url=url, env={})
    return {check.name: check for check in run_checks(ctx, LIVE_CHECKS)}


def test_plain_http_server_posing_as_the_app_fails_healthz(tmp_path: Path) -> None:
    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = serve(Quiet)
    url = next(server)
    try:
        checks = live_report(url)
    finally:
        for _ in server:
            pass
    assert checks["healthz"].status is Status.FAIL
    assert "answered 404" in checks["healthz"].detail
    assert "point --url at the FluxLit gateway" in checks["healthz"].fix
    # Nothing else is judged against a server that is not FluxLit: it would only mislead.
    assert {checks[name].status for name in ("readyz", "html_shell", "static_asset", "websocket")} == {Status.WARN}


def test_healthy_instance_passes_every_live_check(live_fake: Callable[..., str]) -> None:
    checks = live_report(live_fake())
    assert {name: check.status for name, check in checks.items()} == dict.fromkeys(checks, Status.PASS)
    assert "subprotocol streamlit" in checks["websocket"].detail


def test_dropped_upgrade_names_the_proxy_and_the_nginx_fix(live_fake: Callable[..., str]) -> None:
    check = live_report(live_fake(websocket="upgrade-dropped"))["websocket"]
    assert check.status is Status.FAIL
    assert "200 instead of 101" in check.detail
    assert "FluxLit answered 200: the request reached it without 'Upgrade: websocket'" in check.detail
    assert "drops the Upgrade/Connection headers" in check.detail
    assert NGINX_UPGRADE in check.fix


def test_proxy_refusing_the_upgrade_is_named_as_the_hop(live_fake: Callable[..., str]) -> None:
    check = live_report(live_fake(websocket="proxy-refuses"))["websocket"]
    assert check.status is Status.FAIL
    assert "the proxy in front answered 400 itself" in check.detail
    assert NGINX_UPGRADE in check.fix


def test_assets_outside_the_sub_path_ask_for_root_path(live_fake: Callable[..., str]) -> None:
    checks = live_report(live_fake(script="/static/app.js") + "/sub")
    assert checks["healthz"].status is Status.PASS
    assert checks["html_shell"].status is Status.FAIL
    assert "outside the sub-path /sub" in checks["html_shell"].detail
    assert "--root-path /sub" in checks["html_shell"].fix


def test_assets_under_the_sub_path_pass(live_fake: Callable[..., str]) -> None:
    checks = live_report(live_fake() + "/sub/")
    assert checks["html_shell"].status is Status.PASS
    assert checks["static_asset"].status is Status.PASS
    assert "/sub/static/app.js" in checks["static_asset"].detail


def test_handshake_to_a_closed_port_reports_the_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = websocket_handshake(f"ws://127.0.0.1:{port}/_stcore/stream", timeout=1)
    assert (result.status, result.accepted) == (None, False)
    assert "cannot connect" in result.error


def test_fluxlit_at_another_sub_path_is_recognised_by_its_request_id(live_fake: Callable[..., str]) -> None:
    check = live_report(live_fake() + "/elsewhere")["healthz"]
    assert check.status is Status.FAIL
    assert "FluxLit answered (X-Request-ID)" in check.detail
    assert "--root-path" in check.fix
