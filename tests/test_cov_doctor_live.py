"""doctor --url against a scripted HTTP server: each answer a proxy or server may give gets its verdict."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fluxlit.doctor.live_checks import (
    check_healthz,
    check_html_shell,
    check_readyz,
    check_static_asset,
    check_websocket,
)
from fluxlit.doctor.model import DoctorContext, Status

HEALTHY = (200, {"Content-Type": "application/json"}, b'{"status":"ok"}')
DROP = "drop"  # close the connection without answering
Route = tuple[int, dict[str, str], bytes] | str


class Scripted(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, Route]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Scripted  # ty: ignore[incompatible-mutable-override] - the handler only ever serves a Scripted

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def version_string(self) -> str:
        return "nginx"

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path, (404, {}, b"not here"))
        if route == DROP:
            self.close_connection = True
            return
        if route == "ws-no-subprotocol":
            key = self.headers["Sec-WebSocket-Key"].encode()
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept.decode())
            self.end_headers()
            self.close_connection = True
            return
        assert not isinstance(route, str)
        status, headers, body = route
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[Scripted]:
    httpd = Scripted(("127.0.0.1", 0), Handler)
    httpd.routes = {}
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def context(server: Scripted, tmp_path: Path, routes: dict[str, Route] | None = None) -> DoctorContext:
    server.routes = {"/api/healthz": HEALTHY, **(routes or {})}
    return DoctorContext(url=f"http://127.0.0.1:{server.server_address[1]}", cwd=tmp_path, env={})


def verdict(check: Any) -> tuple[Status, str]:
    return check.status, check.detail


def test_a_proxy_error_page_on_healthz_says_the_proxy_cannot_reach_fluxlit(server: Scripted, tmp_path: Path) -> None:
    ctx = context(server, tmp_path)
    server.routes["/api/healthz"] = (502, {"Content-Type": "text/html"}, b"<h1>502</h1>")
    status, detail = verdict(check_healthz(ctx))
    assert status is Status.FAIL
    assert detail.endswith("answered 502 (text/html, server: nginx): the proxy in front cannot reach FluxLit")


def test_readyz_that_cannot_be_fetched_fails_with_a_retry_hint(server: Scripted, tmp_path: Path) -> None:
    ctx = context(server, tmp_path, {"/api/readyz": DROP})
    assert check_healthz(ctx).status is Status.PASS
    check = check_readyz(ctx)
    assert (check.status, check.fix) == (Status.FAIL, "retry; the server may be stopping")
    assert "cannot reach" in check.detail


@pytest.mark.parametrize(
    ("state", "expected"),
    [("starting", Status.WARN), ("restarting", Status.WARN), ("failed", Status.FAIL)],
)
def test_readyz_not_ready_warns_while_streamlit_starts_and_fails_otherwise(
    server: Scripted, tmp_path: Path, state: str, expected: Status
) -> None:
    body = b'{"streamlit": "%s", "detail": "generation 2"}' % state.encode()
    ctx = context(server, tmp_path, {"/api/readyz": (503, {"Content-Type": "application/json"}, body)})
    check_healthz(ctx)
    status, detail = verdict(check_readyz(ctx))
    assert status is expected
    assert detail.endswith(f"answered 503: streamlit is {state} (generation 2)")


@pytest.mark.parametrize(
    ("route", "detail"),
    [
        (DROP, "cannot reach"),
        ((404, {"Content-Type": "text/plain"}, b"nope"), "answered 404 (text/plain, server: nginx)"),
        ((200, {"Content-Type": "text/html"}, b"<html>no scripts</html>"), "the page has no <script src>"),
    ],
)
def test_html_shell_that_is_not_streamlits_page_fails(server: Scripted, tmp_path: Path, route: Route, detail: str):
    ctx = context(server, tmp_path)
    server.routes["/"] = route
    check_healthz(ctx)
    check = check_html_shell(ctx)
    assert check.status is Status.FAIL
    assert detail in check.detail


@pytest.mark.parametrize(
    ("route", "detail"),
    [(DROP, "cannot fetch"), ((404, {"Content-Type": "text/plain"}, b"nope"), "/static/app.js answered 404")],
)
def test_a_script_the_page_loads_that_does_not_download_fails(
    server: Scripted, tmp_path: Path, route: Route, detail: str
) -> None:
    shell = (200, {"Content-Type": "text/html"}, b'<html><script src="./static/app.js"></script></html>')
    ctx = context(server, tmp_path)
    server.routes.update({"/": shell, "/static/app.js": route})
    check_healthz(ctx)
    assert check_html_shell(ctx).status is Status.PASS
    check = check_static_asset(ctx)
    assert check.status is Status.FAIL
    assert detail in check.detail


@pytest.mark.parametrize(
    ("route", "detail"),
    [
        (DROP, "_stcore/stream: invalid handshake answer"),
        ("ws-no-subprotocol", "answered 101 without the 'streamlit' subprotocol"),
        ((403, {}, b"origin"), "refused the handshake with 403: an Origin/Host check failed"),
        ((502, {"X-Request-ID": "r1"}, b""), "answered 502: FluxLit could not bridge the session to Streamlit"),
    ],
)
def test_websocket_answers_other_than_101_streamlit_fail_with_the_reason(
    server: Scripted, tmp_path: Path, route: Route, detail: str
) -> None:
    ctx = context(server, tmp_path, {"/_stcore/stream": route})
    check_healthz(ctx)
    check = check_websocket(ctx)
    assert check.status is Status.FAIL
    assert detail in check.detail
