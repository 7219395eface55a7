"""Path tricks: never the wrong backend, never out of the mount, never a forged log line, never a file outside
Streamlit; and the state file never written through a planted symlink.

Raw request targets go through hypercorn + the real gateway (mount /apps/demo, API prefix /api) with recording
API and proxy slots. Spoofed Host and X-Forwarded-* headers are in tests/test_gateway_forwarded.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import structlog
from fluxlit_proxy.headers import request_target

from fluxlit import FluxLit
from fluxlit.config.paths import is_under
from fluxlit.config.settings import Settings
from fluxlit.gateway.router import build_gateway
from fluxlit.observability.access import AccessObserver
from fluxlit.testing import TestClient
from tests._live import LiveServer
from tests._logs import RecordingLogger
from tests.test_hostile_http import GatewayServer, exchange, head, settle

MOUNT = "/apps/demo"


@pytest.fixture(scope="module")
def mounted() -> Iterator[GatewayServer]:
    with GatewayServer(root_path=MOUNT) as running:
        yield running


def send_target(server: GatewayServer, target: str) -> tuple[int | None, list[Any]]:
    server.recorder.seen.clear()
    reply = exchange(server.port, head(f"GET {target} HTTP/1.1", "Host: a", "Connection: close"))
    if reply.status != 200:  # answered without a backend, or refused: let any stray task finish first
        settle()
    return reply.status, list(server.recorder.seen)


ROUTES = {
    # The API gets every path whose segments, each decoded, are under mount + prefix ...
    "/apps/demo/api/x": "api",
    "/apps/demo/%61pi/x": "api",
    "/apps/%64emo/api/x": "api",
    # ... and nothing else: segment-wise, case-sensitive, no merging of empty segments.
    "/apps/demo/apix": "proxy",
    "/apps/demo/API/x": "proxy",
    "/apps/demo/api;x": "proxy",
    "/apps/demo//api/x": "proxy",
    "//apps/demo/api/x": "proxy",
    "/apps/demo/api%00/x": "proxy",
    "/apps/demo/api#frag": "proxy",
    "/other/api/x": "proxy",
}


@pytest.mark.parametrize(("target", "slot"), ROUTES.items(), ids=ROUTES.keys())
def test_routing_follows_the_decoded_path_segment_wise(mounted: GatewayServer, target: str, slot: str) -> None:
    status, seen = send_target(mounted, target)
    assert status == 200
    assert [s.slot for s in seen] == [slot]


# An encoded '/' or '\' (or a literal '\', which URL parsers turn into '/'): a proxy in front that routes on the
# raw path sees other segments than one that decodes them, so the gateway serves neither reading (Tomcat's default).
ENCODED_SEPARATORS = [
    "/apps/demo/api%2Fx",
    "/apps/demo/api%2fx",
    "/apps%2Fdemo/api/x",
    "/apps/demo%2Fapi/x",
    "/apps/demo/%2fapi/x",
    "/apps/demo/api%5Cx",
    "/apps/demo/api%5cx",
    "/apps/demo/api\\x",
    "/apps/demo/static/a%2Fb.js",
    "/apps/demo/_stcore%2Fhealth",
]


@pytest.mark.parametrize("target", ENCODED_SEPARATORS)
def test_an_encoded_slash_or_backslash_is_refused_before_routing(mounted: GatewayServer, target: str) -> None:
    status, seen = send_target(mounted, target)
    assert (status, seen) == (400, [])


@pytest.fixture(scope="module")
def unmounted() -> Iterator[GatewayServer]:
    with GatewayServer() as running:
        yield running


@pytest.mark.parametrize("target", ["/api%2Fhealthz", "/api%2fsmoke", "/api%5Chealthz", "/%2Fapi/healthz"])
def test_encoded_slashes_never_reach_the_api_through_the_root_mount(unmounted: GatewayServer, target: str) -> None:
    """The probe of issue 15: `/api%2Fhealthz` was answered by the API (200) though a proxy routing on the raw
    path sees no /api/ prefix there."""
    status, seen = send_target(unmounted, target)
    assert (status, seen) == (400, [])


@pytest.fixture(scope="module")
def mounted_allowing_encoded_slashes() -> Iterator[GatewayServer]:
    with GatewayServer(Settings(allow_encoded_slashes=True), root_path=MOUNT) as running:
        yield running


ALLOWED = {
    # An encoded separator stays inside its segment: routing and the backend's bytes agree with the raw path.
    "/apps/demo/api%2Fx": ("proxy", b"/api%2Fx"),
    "/apps%2Fdemo/api/x": ("proxy", b"/apps%2Fdemo/api/x"),
    "/apps/demo%2Fapi/x": ("proxy", b"/apps/demo%2Fapi/x"),
    "/apps/demo/api/a%2Fb": ("api", b"/apps/demo/api/a%2Fb"),
    "/apps/demo/api%5Cx": ("proxy", b"/api%5Cx"),
    "/apps/demo/api\\x": ("proxy", b"/api\\x"),
}


@pytest.mark.parametrize(("target", "expected"), ALLOWED.items(), ids=ALLOWED.keys())
def test_allowed_encoded_slashes_stay_inside_their_segment(
    mounted_allowing_encoded_slashes: GatewayServer, target: str, expected: tuple[str, bytes]
) -> None:
    status, seen = send_target(mounted_allowing_encoded_slashes, target)
    assert status == 200
    assert [(s.slot, s.raw_path) for s in seen] == [expected]


@pytest.mark.parametrize("target", ["/apps/demo/api%2F..%2F..%2Fx", "/apps/demo/_stcore%2F%2e%2e%2Fapi"])
def test_allowed_encoded_slashes_still_refuse_the_dot_segments_they_decode_to(
    mounted_allowing_encoded_slashes: GatewayServer, target: str
) -> None:
    status, seen = send_target(mounted_allowing_encoded_slashes, target)
    assert (status, seen) == (400, [])


DOT_SEGMENTS = [
    "/apps/demo/..",
    "/apps/demo/../..",
    "/apps/demo/../other/api/x",
    "/apps/demo/./api/x",
    "/apps/demo/%2e%2e/api/x",
    "/apps/demo/%2E%2E/%2e%2e/etc/passwd",
    "/apps/demo/_stcore/../../api/x",
    "/apps/demo/api/../_stcore/health",
    "/apps/demo/api/%2e%2e/%2e%2e/_stcore/health",
    "/apps/demo/api/%2E%2E/%2e%2e/x",
]


@pytest.mark.parametrize("target", [*ROUTES, *DOT_SEGMENTS])
def test_what_a_backend_receives_decodes_to_what_the_gateway_routed_on(mounted: GatewayServer, target: str) -> None:
    """No second reading of the path: the backend decodes the bytes it gets to the path the decision used."""
    _, seen = send_target(mounted, target)
    for entry in seen:
        assert unquote(entry.raw_path.decode("ascii")) == entry.path


@pytest.mark.parametrize("target", [*ROUTES, *DOT_SEGMENTS])
def test_a_proxied_request_never_leaves_the_mount(mounted: GatewayServer, target: str) -> None:
    _, seen = send_target(mounted, target)
    for entry in seen:
        if entry.slot == "proxy":
            upstream = request_target(entry.root_path, entry.raw_path, entry.path, b"")
            assert upstream.startswith(MOUNT.encode() + b"/"), upstream


@pytest.mark.parametrize("target", [*ROUTES, *DOT_SEGMENTS])
def test_the_api_only_gets_paths_under_mount_and_prefix(mounted: GatewayServer, target: str) -> None:
    _, seen = send_target(mounted, target)
    for entry in seen:
        if entry.slot == "api":
            assert is_under(entry.path, MOUNT + "/api")
            assert entry.root_path == MOUNT + "/api"


@pytest.mark.parametrize("target", DOT_SEGMENTS)
def test_dot_segments_are_refused_before_routing(mounted: GatewayServer, target: str) -> None:
    status, seen = send_target(mounted, target)
    assert (status, seen) == (400, [])


@pytest.mark.parametrize(
    "request_line",
    [
        "GET http://evil.example/apps/demo/api/x HTTP/1.1",
        "GET api/x HTTP/1.1",
        "OPTIONS * HTTP/1.1",
        "CONNECT evil.example:443 HTTP/1.1",
    ],
    ids=["absolute-form", "no-leading-slash", "asterisk-form", "authority-form"],
)
def test_non_origin_form_targets_are_refused(mounted: GatewayServer, request_line: str) -> None:
    mounted.recorder.seen.clear()
    reply = exchange(mounted.port, head(request_line, "Host: evil.example:443", "Connection: close"))
    settle()
    assert reply.status == 400
    assert mounted.recorder.seen == []


# --- log lines: a hostile path cannot forge one ---


@pytest.mark.parametrize(
    "renderer",
    [structlog.processors.JSONRenderer(), structlog.dev.ConsoleRenderer(colors=False)],
    ids=["json", "console"],
)
def test_a_path_with_encoded_newlines_stays_one_log_line(renderer: Any) -> None:
    logger = RecordingLogger()
    gateway = build_gateway(FluxLit(), observer=AccessObserver(None, logger=logger))
    with TestClient(gateway) as client:
        client.get("/api/x%0A2026-01-01T00:00:00Z%20%5Binfo%5D%20forged%0D%0A")
    (line,) = logger.lines
    assert "\n" in line["path"]
    text = renderer(None, "info", dict(line))
    assert "\n" not in text
    assert "\r" not in text


# --- through a real Streamlit child ---


@pytest.fixture(scope="module")
def mounted_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(Path(tmp_path_factory.mktemp("mounted")), "--root-path", MOUNT).start()
    try:
        live.wait_ready()
        yield live
    finally:
        live.stop()


@pytest.mark.slow
@pytest.mark.parametrize(
    "target",
    [
        "/apps/demo/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/apps/demo/static/../../../../../../etc/passwd",
        "/apps/demo/static/..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/apps/demo/api/..%2F..%2F..%2F..%2Fetc/passwd",
        "/etc/passwd",
    ],
)
def test_traversal_through_the_gateway_never_serves_a_file_outside_streamlit(
    mounted_live: LiveServer, target: str
) -> None:
    live = mounted_live
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(head(f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{live.port}", "Connection: close"))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 ")
    assert b"root:x:0:0" not in answer
    assert httpx.get(f"{live.base}{MOUNT}/_stcore/health", timeout=10).text == "ok"


# --- the upstream state file: private, atomic, never written through a planted symlink ---


def _mode(path: Path) -> int:
    return path.lstat().st_mode & 0o777


@pytest.mark.slow
def test_state_file_is_0600_and_a_symlink_planted_at_its_path_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("do not overwrite\n")
    victim.chmod(0o644)
    state = tmp_path / "upstream-state.json"
    state.symlink_to(victim)
    live = LiveServer(tmp_path).start()
    try:
        live.wait_ready()
        assert not state.is_symlink()
        assert _mode(state) == 0o600
        assert json.loads(state.read_text())["state"] == "ready"
        assert victim.read_text() == "do not overwrite\n"
        assert _mode(victim) == 0o644
    finally:
        assert live.stop() == 0
    assert not state.exists()
    assert victim.read_text() == "do not overwrite\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.slow
def test_default_state_file_lives_in_a_directory_only_the_user_can_write(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    live = LiveServer(tmp_path, env={"XDG_RUNTIME_DIR": str(runtime)})
    flag = live.argv.index("--state-file")
    del live.argv[flag : flag + 2]  # let `fluxlit serve` choose its default location
    live.start()
    try:
        live.wait_ready()
        assert live.proc is not None
        directory = runtime / f"supervisor-{os.getuid()}"
        state = directory / f"upstream-{live.proc.pid}.json"
        assert json.loads(state.read_text())["state"] == "ready"
        assert _mode(directory) == 0o700
        assert directory.stat().st_uid == os.getuid()
        assert _mode(state) == 0o600
    finally:
        live.stop()


@pytest.mark.slow
def test_state_file_readers_never_see_a_partial_write_across_restarts(tmp_path: Path) -> None:

    live = LiveServer(tmp_path, env={"FLUXLIT_RESTART_MAX_FAILURES": "100", "FLUXLIT_RESTART_BACKOFF_MAX_S": "0.5"})
    live.start()
    reads: list[str] = []
    bad: list[str] = []
    stop = threading.Event()

    def read_constantly() -> None:
        while not stop.is_set() and len(reads) < 200_000:
            try:
                text = live.state_file.read_text()
            except FileNotFoundError:
                continue
            reads.append(text[:1])
            try:
                json.loads(text)
            except ValueError:
                bad.append(text)

    try:
        live.wait_ready()
        reader = threading.Thread(target=read_constantly, name="state-reader")
        reader.start()
        try:
            for _ in range(5):
                generation = live.state()["generation"]
                os.kill(live.child_pid(), signal.SIGKILL)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    now = live.state()
                    if now["generation"] > generation and now["state"] == "ready":
                        break
                    time.sleep(0.05)
        finally:
            stop.set()
            reader.join(timeout=10)
        assert len(reads) > 100
        assert bad == []
    finally:
        live.stop()
