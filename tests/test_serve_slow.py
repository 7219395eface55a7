"""`fluxlit serve` as a user runs it: a real Streamlit child, real sockets, real signals."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests._certs import self_signed_certificate
from tests._live import SMOKE_APP, LiveServer, pid_alive, poll_until_ready, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(tmp_path).running() as live:
        yield live


def readyz(live: LiveServer) -> int:
    try:
        return live.get("/api/readyz", timeout=2.0).status_code
    except httpx.HTTPError:
        return -1


def test_cold_start_serves_api_html_shell_and_static_assets(server: LiveServer) -> None:
    assert server.get("/api/healthz").json() == {"status": "ok"}
    assert server.get("/api/smoke").json()["marker"] == "fluxlit_smoke_ok"
    shell = server.get("/")
    assert shell.status_code == 200
    assert '<div id="root">' in shell.text or 'id="root"' in shell.text
    assert server.get("/_stcore/health").text == "ok"
    script = next(part.split('"')[0] for part in shell.text.split('src="')[1:] if part.split('"')[0].endswith(".js"))
    proxied = server.get("/" + script.lstrip("./"))
    direct = httpx.get(f"{server.state()['url']}/{script.lstrip('./')}", timeout=10)
    assert proxied.status_code == 200
    assert proxied.content == direct.content


def test_streamlit_websocket_exchanges_messages_through_the_gateway(server: LiveServer) -> None:
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect

    back = BackMsg()
    back.rerun_script.query_string = ""
    back.rerun_script.page_script_hash = ""
    with connect(f"ws://127.0.0.1:{server.port}/_stcore/stream", subprotocols=["streamlit"], open_timeout=10) as ws:
        assert ws.subprotocol == "streamlit"
        ws.send(back.SerializeToString())
        kinds = set()
        deadline = time.monotonic() + 20
        while "script_finished" not in kinds and time.monotonic() < deadline:
            message = ForwardMsg()
            message.ParseFromString(ws.recv(timeout=10))
            kinds.add(message.WhichOneof("type"))
    assert "new_session" in kinds
    assert "script_finished" in kinds


def test_child_death_restarts_it_while_the_api_keeps_answering(server: LiveServer) -> None:
    first = server.state()
    os.kill(first["pid"], signal.SIGKILL)
    wait_for(lambda: readyz(server) == 503, 10, "readyz 503 after the kill")
    assert server.get("/api/healthz").status_code == 200
    proxied = server.get("/")
    assert proxied.status_code in (200, 503)
    wait_for(lambda: readyz(server) == 200, 60, "readyz 200 after the restart")
    second = server.state()
    assert second["generation"] == first["generation"] + 1
    assert second["pid"] != first["pid"]
    assert not pid_alive(first["pid"])
    assert server.get("/").status_code == 200


def test_sigterm_stops_cleanly_leaving_no_process_and_no_state_file(tmp_path: Path) -> None:
    with LiveServer(tmp_path).started() as live:
        child = live.child_pid()
        assert live.stop(timeout=30) == 0
        assert not pid_alive(child)
        assert not live.state_file.exists()


def test_sigkill_of_the_parent_takes_the_child_down(tmp_path: Path) -> None:
    with LiveServer(tmp_path).started() as live:
        child = live.child_pid()
        live.signal(signal.SIGKILL)
        live.wait_exit(10)
        wait_for(lambda: not pid_alive(child), 5, "the orphaned Streamlit child to die")


def test_bad_target_exits_3_before_any_child_starts(tmp_path: Path) -> None:
    with LiveServer(tmp_path, target="no_such_module_here:app").started(ready=False) as live:
        assert live.wait_exit(30) == 3
        assert "no module named 'no_such_module_here'" in live.log()
        assert not live.state_file.exists()


# Imported by every Python process started in the test's directory (PYTHONPATH holds it): the Streamlit
# children record their pids, so a test can check that not one of them outlives the gateway.
RECORD_CHILD_PIDS = """
import os
if "FLUXLIT_INTERNAL_API_BASE" in os.environ:
    with open(os.path.join({workdir!r}, "child-pids"), "a") as handle:
        handle.write(f"{{os.getpid()}}\\n")
"""


def record_child_pids(workdir: Path) -> Path:
    (workdir / "sitecustomize.py").write_text(RECORD_CHILD_PIDS.format(workdir=str(workdir)))
    return workdir / "child-pids"


def recorded_pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_target_failing_to_import_after_streamlit_started_early_exits_3_and_stops_it(tmp_path: Path) -> None:
    pids = record_child_pids(tmp_path)
    # Slow enough that the early child is surely running (and has recorded its pid) when the import fails.
    (tmp_path / "slow_broken.py").write_text("import time\ntime.sleep(1.5)\nraise RuntimeError('no database')\n")
    with LiveServer(tmp_path, target="slow_broken.py:app").started(ready=False) as live:
        assert live.wait_exit(30) == 3
        assert "RuntimeError: no database" in live.log()
        [early] = recorded_pids(pids)
        assert not pid_alive(early)
        assert not live.state_file.exists()


APP_WITH_ITS_OWN_ROOT_PATH = """
from fluxlit import FluxLit, Settings

app = FluxLit(title="Own root", settings=Settings(root_path="/lab"))


@app.page("/")
def home(st, client):
    st.write("hello")
"""


def test_app_settings_that_change_the_child_replace_the_one_started_early(tmp_path: Path) -> None:
    pids = record_child_pids(tmp_path)
    (tmp_path / "own_root.py").write_text(APP_WITH_ITS_OWN_ROOT_PATH)
    with LiveServer(tmp_path, target="own_root.py:app").running() as live:
        assert live.get("/lab/_stcore/health").text == "ok"
        assert live.get("/lab/").status_code == 200
        early, current = recorded_pids(pids)
        assert live.child_pid() == current
        assert not pid_alive(early)
        assert "its command or environment differs" in live.log()


SHADOWING_MODULE = "raise ImportError(\"the user's own {name}.py was imported in place of FluxLit's\")\n"


def test_a_users_own_proxy_and_supervisor_modules_beside_the_app_do_not_break_serve(tmp_path: Path) -> None:
    # The working directory comes first on sys.path: these shadowed FluxLit's generic packages when they were
    # installed as top-level `proxy` and `supervisor` (the gateway crashed with an ImportError and exit 1).
    (tmp_path / "app.py").write_text(SMOKE_APP.read_text())
    for name in ("proxy", "supervisor"):
        (tmp_path / f"{name}.py").write_text(SHADOWING_MODULE.format(name=name))
    with LiveServer(tmp_path, target="app.py:app").running() as live:
        assert live.get("/api/smoke").json()["marker"] == "fluxlit_smoke_ok"
        assert live.get("/").status_code == 200
        assert "was imported in place of" not in live.log()
    assert live.proc is not None
    assert live.proc.returncode == 0


def test_the_child_started_early_is_adopted_as_generation_one(tmp_path: Path) -> None:
    pids = record_child_pids(tmp_path)
    with LiveServer(tmp_path).running() as live:
        [early] = recorded_pids(pids)
        assert (live.child_pid(), live.state()["generation"]) == (early, 1)
        assert '"streamlit_prestarted": true' in live.log()


def test_port_in_use_exits_6(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        pids = record_child_pids(tmp_path)
        with LiveServer(tmp_path, port=holder.getsockname()[1]).started(ready=False) as live:
            assert live.wait_exit(60) == 6
            assert not any(pid_alive(pid) for pid in recorded_pids(pids))


def test_on_child_exit_exit_stops_the_gateway_non_zero(tmp_path: Path) -> None:
    with LiveServer(tmp_path, "--on-child-exit", "exit").started() as live:
        os.kill(live.child_pid(), signal.SIGKILL)
        assert live.wait_exit(30) == 7


def test_crash_budget_exhausted_exits_5(tmp_path: Path) -> None:
    # The child imports sitecustomize from PYTHONPATH (cwd); once the flag exists every new child dies at start.
    flag = tmp_path / "die"
    (tmp_path / "sitecustomize.py").write_text(
        f"import os\nif 'FLUXLIT_INTERNAL_API_BASE' in os.environ and os.path.exists({str(flag)!r}):\n    os._exit(9)\n"
    )
    live = LiveServer(
        tmp_path,
        env={"FLUXLIT_RESTART_MAX_FAILURES": "3", "FLUXLIT_RESTART_BACKOFF_INITIAL_S": "0.1"},
    ).start()
    try:
        live.wait_ready()
        flag.write_text("")
        os.kill(live.child_pid(), signal.SIGKILL)
        assert live.wait_exit(60) == 5
        assert "crash" in live.log().lower()
    finally:
        live.kill_leftovers()


def test_streamlit_that_cannot_start_exits_4_with_its_stderr(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(
        "import os, sys\n"
        "if 'FLUXLIT_INTERNAL_API_BASE' in os.environ:\n"
        "    sys.stderr.write('boom: cannot start\\n'); sys.stderr.flush(); os._exit(1)\n"
    )
    with LiveServer(tmp_path).started(ready=False) as live:
        assert live.wait_exit(60) == 4
        assert "boom: cannot start" in live.log()


def test_sd_notify_ready_then_stopping(tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(60)
        with LiveServer(tmp_path, env={"NOTIFY_SOCKET": str(sock_path)}).started(ready=False) as live:
            messages: list[str] = []
            while not any("READY=1" in m for m in messages):
                messages.append(sock.recv(4096).decode())
            assert readyz(live) == 200
            live.signal(signal.SIGTERM)
            while not any("STOPPING=1" in m for m in messages):
                messages.append(sock.recv(4096).decode())
            assert live.wait_exit(30) == 0


def test_root_path_serves_everything_under_the_mount(tmp_path: Path) -> None:
    with LiveServer(tmp_path, "--root-path", "/apps/demo").running() as live:
        assert live.get("/apps/demo/api/healthz").json() == {"status": "ok"}
        assert live.get("/apps/demo/api/smoke").status_code == 200
        assert live.get("/apps/demo/_stcore/health").text == "ok"
        assert live.get("/apps/demo/").status_code == 200


def test_config_json_runs_as_a_subprocess(tmp_path: Path) -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "fluxlit", "config", "--json"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout)["settings"]


def test_twenty_child_kills_in_a_row_each_recover_while_healthz_never_fails(tmp_path: Path) -> None:
    env = {"FLUXLIT_RESTART_MAX_FAILURES": "100", "FLUXLIT_RESTART_BACKOFF_MAX_S": "0.5"}
    with LiveServer(tmp_path, env=env).running() as live:
        for round_number in range(20):
            victim = live.state()["pid"]
            generation = live.state()["generation"]
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: readyz(live) == 503, 10, f"readyz 503 after kill {round_number}")
            assert live.get("/api/healthz").status_code == 200
            wait_for(lambda: readyz(live) == 200, 60, f"readyz 200 after kill {round_number}")
            assert live.state()["generation"] > generation
        assert live.get("/api/smoke").status_code == 200


BLOCKING_APP = """
import time
from fluxlit import FluxLit

app = FluxLit(title="Blocking")


@app.api.get("/block")
async def block(seconds: float = 2.0):
    time.sleep(seconds)  # deliberately blocks the event loop
    return {"blocked": seconds}


@app.page("/")
def home(st, client):
    st.write("hi")
"""


def test_watchdog_pings_stop_while_the_event_loop_is_blocked(tmp_path: Path) -> None:
    (tmp_path / "blocking_app.py").write_text(BLOCKING_APP)
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(0.1)
        env = {"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"}  # pings every 0.2 s
        with LiveServer(tmp_path, target="blocking_app:app", env=env).running() as live:
            pings: list[float] = []

            def collect(seconds: float) -> None:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    try:
                        if b"WATCHDOG=1" in sock.recv(4096):
                            pings.append(time.monotonic())
                    except TimeoutError:
                        pass

            collect(1.0)
            assert len(pings) >= 3, "no regular watchdog pings before the block"
            import threading

            blocker = threading.Thread(target=lambda: live.get("/api/block?seconds=2", timeout=10))
            blocker.start()
            collect(3.5)
            blocker.join(timeout=10)
            gaps = [b - a for a, b in itertools.pairwise(pings)]
            assert max(gaps) > 1.5, f"pings kept coming while the loop was blocked: {gaps}"
            last = pings[-1]
            collect(1.0)
            assert pings[-1] > last, "pings did not resume after the block"


def test_tls_serves_http2_and_pages_still_reach_the_api(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    live = LiveServer(tmp_path, "--certfile", str(cert), "--keyfile", str(key)).start()
    live.base = live.base.replace("http://", "https://")
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(http2=True, verify=False, timeout=5) as client:
            poll_until_ready(client, f"{live.base}/api/readyz", deadline)
            response = client.get(f"{live.base}/api/smoke")
            assert response.http_version == "HTTP/2"
            assert response.json()["marker"] == "fluxlit_smoke_ok"
            assert client.get(f"{live.base}/").status_code == 200
        base = json.loads((tmp_path / "upstream-state.json").read_text())
        assert base["state"] == "ready"
    finally:
        live.stop()


def test_unix_and_tcp_binds_together(tmp_path: Path) -> None:
    sock = tmp_path / "fluxlit.sock"
    port = __import__("tests._live", fromlist=["free_port"]).free_port()
    live = LiveServer(tmp_path, "--bind", f"unix:{sock}", "--bind", f"127.0.0.1:{port}")
    live.base = f"http://127.0.0.1:{port}"
    live.start()
    try:
        live.wait_ready()
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), timeout=5) as client:
            assert client.get("http://fluxlit/api/healthz").json() == {"status": "ok"}
        assert live.get("/api/smoke").status_code == 200
    finally:
        live.stop()


SLOW_IMPORT = """\
import pathlib, time
pathlib.Path("importing").write_text("yes")
time.sleep(60)
from fluxlit import FluxLit
app = FluxLit()
"""


def test_sigterm_during_the_app_import_exits_0_promptly_and_stops_the_early_child(tmp_path: Path) -> None:
    (tmp_path / "slow_import_app.py").write_text(SLOW_IMPORT)
    live = LiveServer(tmp_path, target="slow_import_app.py:app")
    live.start()
    assert live.proc is not None
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "importing").exists():
            assert live.proc.poll() is None, live.log()
            assert time.monotonic() < deadline, "the app import never started"
            time.sleep(0.05)
        children = [child.pid for child in psutil.Process(live.proc.pid).children(recursive=True)]
        assert children, "serve started no Streamlit child ahead of the import"
        started = time.monotonic()
        live.signal(signal.SIGTERM)
        code = live.wait_exit(timeout=30)
        assert time.monotonic() - started < 15
    finally:
        live.kill_leftovers()
    assert code == 0, live.log()[-4000:]
    assert [pid for pid in children if pid_alive(pid)] == []  # the Streamlit child started early went too
