"""A real `fluxlit serve` process for slow and e2e tests: started as a user would, stopped by its PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import httpx

SMOKE_APP = Path(__file__).resolve().parent.parent / "examples" / "smoke_app" / "app.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveServer:
    """One `python -m fluxlit serve` subprocess in its own session, with its log in a file."""

    def __init__(
        self,
        workdir: Path,
        *args: str,
        target: str = f"{SMOKE_APP}:app",
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.state_file = workdir / "upstream-state.json"
        self.log_path = workdir / f"fluxlit-{self.port}.log"
        self.argv = [
            sys.executable, "-m", "fluxlit", "serve", target,
            "--port", str(self.port), "--state-file", str(self.state_file), "--log-format", "json", *args,
        ]  # fmt: skip
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.workdir, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        return self

    @contextlib.contextmanager
    def running(self) -> Generator[LiveServer, None, None]:
        """Start, wait until ready, and always stop: the usual shape of a fixture."""
        self.start()
        try:
            self.wait_ready()
            yield self
        finally:
            self.stop()

    @contextlib.contextmanager
    def started(self, *, ready: bool = True) -> Generator[LiveServer, None, None]:
        """Start (and wait until ready, unless `ready` is False) for a test that stops the server itself or
        watches it exit; whatever is left of it afterwards is killed."""
        self.start()
        try:
            if ready:
                self.wait_ready()
            yield self
        finally:
            self.kill_leftovers()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.base + path, timeout=kwargs.pop("timeout", 10.0), **kwargs)

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Seconds until /api/readyz answered 200; fails with the server log if it never does."""
        assert self.proc is not None
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"fluxlit exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                if self.get("/api/readyz", timeout=2.0).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not ready after {timeout}s:\n{self.log()[-4000:]}")

    def state(self) -> dict[str, Any]:
        return dict(json.loads(self.state_file.read_text()))

    def child_pid(self) -> int:
        pid = self.state().get("pid")
        assert isinstance(pid, int), self.state()
        return pid

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signum)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; the process group is killed if anything is left."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.kill_leftovers()

    def kill_leftovers(self) -> None:
        """Last resort after a failed test: SIGKILL the whole session started for this server."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `predicate()` held, polled every 50 ms; fails naming `what` after `timeout` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def poll_until_ready(client: httpx.Client, url: str, deadline: float) -> None:
    """Ask `url` with `client` (for TLS or HTTP/2, which `wait_ready` does not speak) until it answers 200 or the
    monotonic `deadline` passes; the test's next request says whether it came up."""
    while time.monotonic() < deadline:
        try:
            if client.get(url).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0); it is gone for our purposes
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


XSRF_COOKIE = "_streamlit_xsrf"


def xsrf_token(live: LiveServer) -> str:
    """A fresh XSRF token, from the cookie Streamlit sets on its health answer (as a browser gets one)."""
    response = live.get("/_stcore/health")
    assert response.status_code == 200, response.text
    return response.cookies[XSRF_COOKIE].strip('"')


@contextlib.contextmanager
def streamlit_session(live: LiveServer, token: str) -> Generator[str, None, None]:
    """A live Streamlit session opened through the gateway as the frontend opens one; yields its id.

    The session (and so the uploads it accepts) lives while the WebSocket is open.
    """
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect

    back = BackMsg()
    back.rerun_script.query_string = ""
    back.rerun_script.page_script_hash = ""
    with connect(
        f"ws://127.0.0.1:{live.port}/_stcore/stream",
        subprotocols=["streamlit", token],  # type: ignore[list-item]
        additional_headers={"Cookie": f"{XSRF_COOKIE}={token}", "Origin": live.base},
        open_timeout=10,
        max_queue=None,  # nobody reads after the first message: never stop answering pings for a full queue
    ) as ws:
        ws.send(back.SerializeToString())
        found = ""
        deadline = time.monotonic() + 20
        while not found and time.monotonic() < deadline:
            message = ForwardMsg()
            message.ParseFromString(ws.recv(timeout=10))
            if message.WhichOneof("type") == "new_session":
                found = message.new_session.initialize.session_id
        assert found, "no new_session message within 20 s"
        yield found
