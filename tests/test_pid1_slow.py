"""`fluxlit serve` as PID 1 of a fresh PID namespace, as the container entrypoint runs it: it stops on SIGTERM and
reaps orphans it adopts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests._live import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.external("pid-namespace"),
]

ORPHAN_APP = """
import subprocess
from fluxlit import FluxLit

app = FluxLit(title="PID 1")


@app.api.post("/orphan")
def orphan() -> dict[str, bool]:
    # sh exits at once; its background sleep is orphaned and re-parented to PID 1 (fluxlit).
    subprocess.run(["sh", "-c", "sleep 0.2 & exit 0"], check=True)
    return {"spawned": True}


@app.page("/")
def home(st, client):
    st.write("pid 1")
"""


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def state_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_fluxlit_as_pid_1_reaps_orphans_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "pid1_app.py").write_text(ORPHAN_APP)
    port = free_port()
    unshare = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "fluxlit", "serve", "pid1_app:app",
         "--port", str(port), "--log-format", "json", "--state-file", str(tmp_path / "state.json")],
        cwd=tmp_path, stdout=(tmp_path / "log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and not ready:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/api/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.1)
        assert ready, (tmp_path / "log").read_text()
        (init,) = children(unshare.pid)  # fluxlit: PID 1 inside the namespace
        nspid = next(
            line for line in Path(f"/proc/{init}/status").read_text().splitlines() if line.startswith("NSpid:")
        )
        assert nspid.split()[-1] == "1", nspid
        for _ in range(5):
            assert httpx.post(f"http://127.0.0.1:{port}/api/orphan", timeout=10).json() == {"spawned": True}
        # The reaper sweeps on SIGCHLD and at least once a second (uvloop keeps SIGCHLD for itself).
        deadline = time.monotonic() + 5.0
        zombies = [pid for pid in children(init) if state_of(pid) == "Z"]
        while zombies and time.monotonic() < deadline:
            time.sleep(0.1)
            zombies = [pid for pid in children(init) if state_of(pid) == "Z"]
        assert zombies == [], f"un-reaped orphans after 5 s: {zombies}"
        os.kill(init, signal.SIGTERM)
        assert unshare.wait(timeout=30) == 0, (tmp_path / "log").read_text()
        assert state_of(init) == "gone"
    finally:
        if unshare.poll() is None:
            os.killpg(unshare.pid, signal.SIGKILL)
            unshare.wait(timeout=10)
