"""`hypercorn app:app`, `uvicorn app:app` and gunicorn with uvicorn workers for real, over 127.0.0.1, with a real
Streamlit child: the gateway answers, the lifespan starts the child, SIGTERM stops it by PID; with `--workers 2`,
the workers share one child."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests._live import LiveServer, pid_alive, wait_for

pytestmark = pytest.mark.slow

APP = """
from fluxlit import FluxLit

app = FluxLit(title="Unified")


@app.api.get("/hello")
def hello() -> dict[str, str]:
    return {"hello": "unified"}


@app.page("/")
def home(st, client) -> None:
    st.write("unified home")
"""


def asgi_server(tmp_path: Path, server: str, *extra: str) -> LiveServer:
    (tmp_path / "app.py").write_text(APP)
    live = LiveServer(tmp_path)
    # The child's internal API base comes from the settings, not the server's --port (the reference's A10 too).
    live.env.update({"FLUXLIT_PORT": str(live.port), "FLUXLIT_STREAMLIT_UPSTREAM_FILE": str(live.state_file)})
    live.env.pop("FLUXLIT_APP", None)
    if server == "hypercorn":
        live.argv = [sys.executable, "-m", "hypercorn", "app:app", "--bind", f"127.0.0.1:{live.port}", *extra]
    elif server == "gunicorn":
        live.argv = [sys.executable, "-m", "gunicorn", "-k", "uvicorn.workers.UvicornWorker", "app:app"]
        live.argv += ["--bind", f"127.0.0.1:{live.port}", *extra]
    else:
        live.argv = [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(live.port)]
        live.argv += list(extra)
    return live


def streamlit_processes_in(directory: Path) -> list[int]:
    """Streamlit servers running in `directory` (the child runs in its own session, so not the server's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == str(directory) and b"streamlit" in cmdline and b"run" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("server", ["hypercorn", "uvicorn"])
def test_an_asgi_server_serves_the_app_and_its_lifespan_runs_and_stops_the_streamlit_child(
    tmp_path: Path, server: str
) -> None:
    live = asgi_server(tmp_path, server)
    with live.started():
        live.wait_ready()
        assert live.get("/api/hello").json() == {"hello": "unified"}
        assert live.get("/api/healthz").json() == {"status": "ok"}
        assert live.get("/_stcore/health").text == "ok"
        page = live.get("/")
        assert page.status_code == 200
        assert "<html" in page.text.lower()
        pid = live.child_pid()
        assert pid_alive(pid)
        # uvicorn (0.29+) re-raises the SIGTERM it handled once it has shut down; hypercorn exits 0.
        assert live.stop() == (-signal.SIGTERM if server == "uvicorn" else 0)
        if server == "uvicorn":
            assert "Application shutdown complete." in live.log()
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(pid)
        assert not live.state_file.exists()


def test_uvicorn_workers_share_one_streamlit_child(tmp_path: Path) -> None:
    live = asgi_server(tmp_path, "uvicorn", "--workers", "2")
    with live.started():
        live.wait_ready()
        for _ in range(20):  # requests land on both workers: each one proxies to the same child
            assert live.get("/_stcore/health").text == "ok"
        assert streamlit_processes_in(tmp_path) == [live.child_pid()]
        pid = live.child_pid()
        live.stop()
        assert not pid_alive(pid)


def test_gunicorn_with_uvicorn_workers_serves_the_app_from_one_streamlit_child_and_stops_it(tmp_path: Path) -> None:
    live = asgi_server(tmp_path, "gunicorn", "--workers", "2")
    with live.started():
        live.wait_ready()
        for _ in range(20):  # requests land on both workers: each one serves the API and proxies to the same child
            assert live.get("/api/hello").json() == {"hello": "unified"}
            assert live.get("/_stcore/health").text == "ok"
        assert live.get("/").status_code == 200
        pid = live.child_pid()
        assert streamlit_processes_in(tmp_path) == [pid]
        live.stop()
        wait_for(lambda: not pid_alive(pid), 10, f"the Streamlit child {pid} to exit")
        assert not live.state_file.exists()
