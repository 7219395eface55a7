"""`fluxlit dev` as a user runs it: edit the app, see the new code served, stop it, leave nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests._live import free_port, pid_alive

pytestmark = pytest.mark.slow

APP = """\
from fluxlit import FluxLit

app = FluxLit(title="Dev")


@app.api.get("/value")
def value():
    return {{"value": "{value}"}}


@app.page("/")
def home(st, client):
    st.write(client.get("/value").json()["value"])
"""


class DevProcess:
    """`python -m fluxlit dev` in its own session, log in a file, stopped by its PID."""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.state_file = workdir / "state.json"
        self.log_path = workdir / "dev.log"
        argv = [
            sys.executable, "-m", "fluxlit", "dev", "devapp:app", "--poll-interval", "0.2",
            "--port", str(self.port), "--state-file", str(self.state_file), "--log-format", "json",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def value(self) -> str | None:
        try:
            response = httpx.get(self.base + "/api/value", timeout=2.0)
        except httpx.HTTPError:
            return None
        return str(response.json()["value"]) if response.status_code == 200 else None

    def ready(self) -> bool:
        try:
            return httpx.get(self.base + "/api/readyz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"fluxlit dev exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{self.log()[-3000:]}")

    def tree(self) -> set[int]:
        """This process and every descendant, from /proc (serve, then Streamlit in their own sessions)."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        found = {self.proc.pid}
        grew = True
        while grew:
            children = {pid for pid, ppid in parents.items() if ppid in found} - found
            grew = bool(children)
            found |= children
        return found

    def kill_leftovers(self, pids: set[int]) -> None:
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def dev_app(tmp_path: Path) -> Iterator[DevProcess]:
    (tmp_path / "devapp.py").write_text(APP.format(value="one"))
    dev = DevProcess(tmp_path)
    seen: set[int] = set()
    try:
        dev.wait_for(dev.ready, 90, "the first serve to be ready")
        seen |= dev.tree()
        yield dev
    finally:
        seen |= dev.tree() if dev.proc.poll() is None else set()
        dev.kill_leftovers(seen)


def edit(path: Path, text: str) -> None:
    before = path.stat().st_mtime_ns
    path.write_text(text)
    if path.stat().st_mtime_ns == before:  # a coarse-mtime filesystem: make the change visible
        os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def test_an_edit_is_served_by_fresh_processes_and_sigterm_leaves_nothing(dev_app: DevProcess) -> None:
    assert dev_app.value() == "one"
    first_children = dev_app.tree() - {dev_app.proc.pid}
    edit(dev_app.workdir / "devapp.py", APP.format(value="two"))
    dev_app.wait_for(lambda: dev_app.value() == "two", 60, "the edited route to answer")
    dev_app.wait_for(dev_app.ready, 60, "Streamlit of the new serve to be ready")
    processes = dev_app.tree()
    assert not (first_children & processes), "the old serve and Streamlit must be gone, not reused"
    assert "devapp.py changed: restarting" in dev_app.log()

    dev_app.proc.send_signal(signal.SIGTERM)
    assert dev_app.proc.wait(timeout=40) == 0
    time.sleep(0.2)  # let init reap the grandchildren
    assert [pid for pid in processes if pid_alive(pid)] == []


def test_a_broken_edit_keeps_watching_and_a_fix_serves_again(dev_app: DevProcess) -> None:
    edit(dev_app.workdir / "devapp.py", "this is not python\n")
    dev_app.wait_for(lambda: "waiting for a change" in dev_app.log(), 60, "serve to fail on the broken file")
    assert dev_app.value() is None
    edit(dev_app.workdir / "devapp.py", APP.format(value="fixed"))
    dev_app.wait_for(lambda: dev_app.value() == "fixed", 60, "the fixed app to be served")
    processes = dev_app.tree()

    dev_app.proc.send_signal(signal.SIGINT)
    assert dev_app.proc.wait(timeout=40) == 0
    time.sleep(0.2)
    assert [pid for pid in processes if pid_alive(pid)] == []


def test_a_busy_port_ends_dev_with_serves_exit_code(tmp_path: Path) -> None:
    (tmp_path / "devapp.py").write_text(APP.format(value="one"))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        dev = DevProcess(tmp_path, port=holder.getsockname()[1])
        try:
            assert dev.proc.wait(timeout=60) == 6, dev.log()[-3000:]
        finally:
            dev.kill_leftovers(set())
    assert "no code change can fix" in dev.log()
