"""doctor --url: each answer a proxy or server may give gets its verdict; with --lb-idle-timeout, the ping interval
reported, compared with the load balancer's idle timeout, and one ping waited for through the URL, against a
scripted server that pings (or not) as told."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fluxlit.doctor import live_checks as doctor_live
from fluxlit.doctor.live_checks import (
    check_healthz,
    check_html_shell,
    check_readyz,
    check_static_asset,
    check_websocket,
    check_websocket_keepalive,
)
from fluxlit.doctor.model import DoctorContext, Status
from fluxlit.doctor.registry import doctor
from fluxlit.doctor.ws_probe import first_ping
from tests._tcp import LoopbackTcpServer

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PING = b"\x89\x00"
CLOSE_1000 = b"\x88\x02\x03\xe8"


class ScriptedWebSocketServer(LoopbackTcpServer):
    """Answers /api/healthz as FluxLit does, and accepts WebSockets, then pings after `ping_after` seconds
    (never when None), or sends `then` (raw frames) and closes, or (`chatter`) sends a message every 50 ms;
    records whether a pong came back."""

    def __init__(
        self, *, ping_after: float | None = None, then: bytes = b"", refuse: bool = False, chatter: bool = False
    ) -> None:
        super().__init__()
        self.ping_after, self.then, self.refuse, self.chatter = ping_after, then, refuse, chatter
        self.pong = threading.Event()
        self.url = f"http://127.0.0.1:{self.port}"

    def handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            key = re.search(rb"(?i)sec-websocket-key: *(\S+)", head)
            if key is None:
                body = json.dumps({"status": "ok"}).encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-ID: r\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
                )
                return
            if self.refuse:
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            accept = base64.b64encode(hashlib.sha1(key.group(1) + GUID).digest())
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Protocol: streamlit\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n" + self.then
            )
            if self.then:
                return
            while self.chatter and not self.stopped.wait(0.05):
                try:
                    conn.sendall(b"\x81\x01x")
                except OSError:
                    return
            if self.ping_after is not None and not self.stopped.wait(self.ping_after):
                conn.sendall(PING)
            try:
                while data := conn.recv(4096):
                    if data[0] & 0x0F == 0xA:  # a pong
                        self.pong.set()
            except OSError:
                pass


def checked(server: ScriptedWebSocketServer, tmp_path: Path, idle: float | None, **env: str) -> tuple[Status, str]:
    ctx = DoctorContext(url=server.url, cwd=tmp_path, env=env, lb_idle_timeout=idle)
    assert check_healthz(ctx).status is Status.PASS
    check = check_websocket_keepalive(ctx)
    return check.status, check.detail + " | " + check.fix


def test_first_ping_times_the_servers_first_ping_and_answers_it() -> None:
    with ScriptedWebSocketServer(ping_after=0.2) as server:
        waited = first_ping(f"ws://127.0.0.1:{server.port}/_stcore/stream", within=3)
        assert server.pong.wait(3)
    assert waited.error == ""
    assert waited.seconds is not None
    assert 0.1 <= waited.seconds < 2


@pytest.mark.parametrize(
    ("server", "why"),
    [
        (ScriptedWebSocketServer(ping_after=None), "no ping in time"),
        (ScriptedWebSocketServer(then=CLOSE_1000), "the server closed first"),
        (ScriptedWebSocketServer(then=b"\x81\x02hi"), "a message, then the end of the connection"),
        (ScriptedWebSocketServer(chatter=True), "messages until the time is up"),
    ],
)
def test_first_ping_is_none_without_a_ping(server: ScriptedWebSocketServer, why: str) -> None:
    with server:
        waited = first_ping(f"ws://127.0.0.1:{server.port}/", within=0.5)
    assert (waited.seconds, waited.error) == (None, ""), why


def test_first_ping_says_why_the_websocket_never_opened() -> None:
    with ScriptedWebSocketServer(refuse=True) as server:
        assert first_ping(f"ws://127.0.0.1:{server.port}/", within=1).error == "the handshake was answered 403"
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    assert first_ping(f"ws://127.0.0.1:{port}/", within=1).error.startswith(f"cannot connect to 127.0.0.1:{port}")


# (what the scripted server does, --lb-idle-timeout, the ping interval set here, slack while waiting for a ping,
# the verdict, what its text says: phrases, or patterns where a measured time is in it)
KEEPALIVE_VERDICTS = [
    pytest.param(
        {}, None, None, None, Status.PASS,
        ["pings idle browser WebSockets every 20 s", "pass --lb-idle-timeout SECONDS"],
        id="without-an-idle-timeout-the-configured-interval-is-reported",
    ),
    pytest.param(
        {}, None, "0", None, Status.WARN, ["pings are off here", "serve with --ws-ping-interval 20"],
        id="pings-turned-off-are-a-warning-without-an-idle-timeout",
    ),
    pytest.param(
        {}, 60.0, "0", None, Status.WARN, ["pings are off here", "serve with --ws-ping-interval 20"],
        id="pings-turned-off-are-a-warning-with-an-idle-timeout",
    ),
    pytest.param(
        {"ping_after": 0.1}, 20.0, "20", None, Status.WARN,
        ["the ping interval 20 s is not below the load balancer's idle timeout 20 s", "--ws-ping-interval 6"],
        id="an-interval-not-below-the-idle-timeout-is-a-warning-with-one-that-fits",
    ),
    pytest.param(
        {"ping_after": 0.2}, 60.0, "1", None, Status.PASS,
        [re.compile(r"pinged after 0\.\d s, below the load balancer's idle timeout 60 s")],
        id="a-ping-through-the-url-before-the-idle-timeout-passes",
    ),
    pytest.param(
        {"ping_after": None}, 60.0, "0.2", 0.3, Status.WARN,
        ["sent no ping within 0.5 s, though 0.2 s is configured here"],
        id="no-ping-within-the-interval-is-a-warning-naming-the-likely-causes",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("script", "idle", "interval", "slack", "status", "says"), KEEPALIVE_VERDICTS)
def test_the_keepalive_verdict(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    script: dict[str, Any],
    idle: float | None,
    interval: str | None,
    slack: float | None,
    status: Status,
    says: list[str | re.Pattern[str]],
) -> None:
    if slack is not None:
        monkeypatch.setattr(doctor_live, "PING_SLACK_S", slack)
    env = {} if interval is None else {"FLUXLIT_WS_PING_INTERVAL_S": interval}
    with ScriptedWebSocketServer(**script) as server:
        verdict, text = checked(server, tmp_path, idle, **env)
    assert verdict is status
    for phrase in says:
        assert phrase.search(text) if isinstance(phrase, re.Pattern) else phrase in text, (phrase, text)


def test_a_websocket_that_cannot_open_fails(tmp_path: Path) -> None:
    with ScriptedWebSocketServer(refuse=True) as server:
        status, text = checked(server, tmp_path, 60.0, FLUXLIT_WS_PING_INTERVAL_S="1")
    assert status is Status.FAIL
    assert "the handshake was answered 403" in text


def test_the_check_waits_for_fluxlit_to_answer_first(tmp_path: Path) -> None:
    ctx = DoctorContext(url="http://127.0.0.1:9", cwd=tmp_path, env={}, lb_idle_timeout=60.0)
    check = check_websocket_keepalive(ctx)
    assert (check.status, check.detail) == (Status.WARN, "not checked: no FluxLit gateway answered healthz")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lb-idle-timeout", "60"], "checks a running instance: give its --url too"),
        (["--url", "http://127.0.0.1:9", "--lb-idle-timeout", "0"], "0.0 is not in the range x>0"),
    ],
)
def test_a_bad_idle_timeout_is_a_usage_error(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(doctor, args)
    assert result.exit_code == 2
    assert message in result.output


# --- each answer a proxy or server may give, from a scripted HTTP server ---

HEALTHY = (200, {"Content-Type": "application/json"}, b'{"status":"ok"}')
DROP = "drop"  # close the connection without answering
Route = tuple[int, dict[str, str], bytes] | str


class ScriptedHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, Route]


class ScriptedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ScriptedHttpServer  # ty: ignore[incompatible-mutable-override] - it only serves a ScriptedHttpServer

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
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
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
def scripted() -> Iterator[ScriptedHttpServer]:
    httpd = ScriptedHttpServer(("127.0.0.1", 0), ScriptedHandler)
    httpd.routes = {}
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def context(scripted: ScriptedHttpServer, tmp_path: Path, routes: dict[str, Route] | None = None) -> DoctorContext:
    scripted.routes = {"/api/healthz": HEALTHY, **(routes or {})}
    return DoctorContext(url=f"http://127.0.0.1:{scripted.server_address[1]}", cwd=tmp_path, env={})


def verdict(check: Any) -> tuple[Status, str]:
    return check.status, check.detail


def test_a_proxy_error_page_on_healthz_says_the_proxy_cannot_reach_fluxlit(
    scripted: ScriptedHttpServer, tmp_path: Path
) -> None:
    ctx = context(scripted, tmp_path)
    scripted.routes["/api/healthz"] = (502, {"Content-Type": "text/html"}, b"<h1>502</h1>")
    status, detail = verdict(check_healthz(ctx))
    assert status is Status.FAIL
    assert detail.endswith("answered 502 (text/html, server: nginx): the proxy in front cannot reach FluxLit")


def test_readyz_that_cannot_be_fetched_fails_with_a_retry_hint(scripted: ScriptedHttpServer, tmp_path: Path) -> None:
    ctx = context(scripted, tmp_path, {"/api/readyz": DROP})
    assert check_healthz(ctx).status is Status.PASS
    check = check_readyz(ctx)
    assert (check.status, check.fix) == (Status.FAIL, "retry; the server may be stopping")
    assert "cannot reach" in check.detail


@pytest.mark.parametrize(
    ("state", "expected"),
    [("starting", Status.WARN), ("restarting", Status.WARN), ("failed", Status.FAIL)],
)
def test_readyz_not_ready_warns_while_streamlit_starts_and_fails_otherwise(
    scripted: ScriptedHttpServer, tmp_path: Path, state: str, expected: Status
) -> None:
    body = b'{"streamlit": "%s", "detail": "generation 2"}' % state.encode()
    ctx = context(scripted, tmp_path, {"/api/readyz": (503, {"Content-Type": "application/json"}, body)})
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
def test_html_shell_that_is_not_streamlits_page_fails(
    scripted: ScriptedHttpServer, tmp_path: Path, route: Route, detail: str
):
    ctx = context(scripted, tmp_path)
    scripted.routes["/"] = route
    check_healthz(ctx)
    check = check_html_shell(ctx)
    assert check.status is Status.FAIL
    assert detail in check.detail


@pytest.mark.parametrize(
    ("route", "detail"),
    [(DROP, "cannot fetch"), ((404, {"Content-Type": "text/plain"}, b"nope"), "/static/app.js answered 404")],
)
def test_a_script_the_page_loads_that_does_not_download_fails(
    scripted: ScriptedHttpServer, tmp_path: Path, route: Route, detail: str
) -> None:
    shell = (200, {"Content-Type": "text/html"}, b'<html><script src="./static/app.js"></script></html>')
    ctx = context(scripted, tmp_path)
    scripted.routes.update({"/": shell, "/static/app.js": route})
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
    scripted: ScriptedHttpServer, tmp_path: Path, route: Route, detail: str
) -> None:
    ctx = context(scripted, tmp_path, {"/_stcore/stream": route})
    check_healthz(ctx)
    check = check_websocket(ctx)
    assert check.status is Status.FAIL
    assert detail in check.detail
