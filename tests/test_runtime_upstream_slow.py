"""`fluxlit serve --streamlit-upstream` in front of a real `streamlit run` that the test starts and stops by PID:
no child of its own, pages and sessions through the gateway, readiness following the external Streamlit."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path

import httpx
import pytest

from tests._live import LiveServer, free_port, pid_alive, streamlit_session, wait_for, xsrf_token

pytestmark = pytest.mark.slow

SCRIPT = 'import streamlit as st\n\nst.title("Run by someone else")\n'


class ExternalStreamlit:
    """`python -m streamlit run` on a free loopback port, in its own session, stopped by its PID."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (workdir / "external_page.py").write_text(SCRIPT)
        self.log_path = workdir / "external-streamlit.log"
        self.argv = [
            sys.executable, "-m", "streamlit", "run", str(workdir / "external_page.py"),
            "--server.port", str(self.port), "--server.address", "127.0.0.1", "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        ]  # fmt: skip
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @contextlib.contextmanager
    def running(self) -> Generator[ExternalStreamlit, None, None]:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            wait_for(self._healthy, 60, f"streamlit on {self.url}:\n{self.log_path.read_text(errors='replace')}")
            yield self
        finally:
            self.stop()

    def _healthy(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, self.log_path.read_text(errors="replace")
        try:
            return httpx.get(self.url + "/_stcore/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def test_serve_fronts_an_external_streamlit_and_follows_its_death(tmp_path: Path) -> None:
    with ExternalStreamlit(tmp_path).running() as external:
        live = LiveServer(tmp_path, "--streamlit-upstream", external.url + "/")
        with live.running():
            ready = live.get("/api/readyz")
            assert (ready.status_code, ready.json()["streamlit"]) == (200, "ok")
            page = live.get("/")
            assert page.status_code == 200
            assert "<title>Streamlit</title>" in page.text
            with streamlit_session(live, xsrf_token(live)) as session_id:  # its WebSocket, relayed
                assert session_id
            assert live.get("/api/healthz").status_code == 200
            # No child of its own, and the state file is read, never written, by a run that fronts another.
            assert '"streamlit": false' in live.log() or '"streamlit":false' in live.log()
            assert not live.state_file.exists()

            assert external.proc is not None
            external_pid = external.proc.pid
            external.stop()
            assert not pid_alive(external_pid)
            wait_for(lambda: live.get("/api/readyz").status_code == 503, 10, "readyz to notice the upstream died")
            not_ready = live.get("/api/readyz")
            assert not_ready.headers["retry-after"] == "2"
            assert not_ready.json()["streamlit"] == "unreachable"
            proxied = live.get("/")
            assert (proxied.status_code, proxied.headers.get("retry-after")) == (503, "2")
