"""`fluxlit serve --workers 2` as a user runs it: two gateway processes on one port, one Streamlit child."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests._certs import self_signed_certificate
from tests._live import LiveServer, pid_alive, poll_until_ready, wait_for

pytestmark = pytest.mark.slow

REPLICA = "x-fluxlit-replica"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(tmp_path, "--workers", "2", "--graceful-timeout", "2").running() as live:
        wait_for(lambda: len(worker_pids(live)) == 1, 30, "the worker process")
        assert answer_from(live, replica_of(worker_pids(live)[0]), "/api/healthz", 200), live.log()[-3000:]
        yield live


def worker_pids(live: LiveServer) -> list[int]:
    assert live.proc is not None
    return [
        child.pid
        for child in psutil.Process(live.proc.pid).children()
        if "fluxlit.runtime.gateway_worker" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE
    ]


def replica_of(pid: int) -> str:
    return f"{socket.gethostname()}-{pid}"


def answer_from(live: LiveServer, replica: str, path: str, status: int, within: float = 30.0) -> bool:
    """Whether, within `within` seconds of fresh connections, `replica` answered `path` with `status`."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            response = live.get(path, timeout=5.0)
        except httpx.HTTPError:
            continue
        if response.headers.get(REPLICA) == replica and response.status_code == status:
            return True
    return False


def test_two_processes_serve_the_api_and_the_pages(server: LiveServer) -> None:
    assert server.proc is not None
    [worker] = worker_pids(server)
    seen: set[str] = set()
    for _ in range(400):
        response = server.get("/api/smoke")
        assert response.status_code == 200
        seen.add(response.headers[REPLICA])
        if len(seen) == 2:
            break
    assert seen == {replica_of(server.proc.pid), replica_of(worker)}
    assert answer_from(server, replica_of(worker), "/", 200)
    assert answer_from(server, replica_of(worker), "/api/readyz", 200)


def test_a_killed_worker_is_restarted_while_every_api_request_succeeds(server: LiveServer) -> None:
    [first] = worker_pids(server)
    server.get("/api/healthz")  # nothing in flight: the kill below cannot cut a request short

    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    replacement: list[int] = []
    failures = 0
    while time.monotonic() < deadline:
        response = server.get("/api/healthz")
        failures += response.status_code != 200
        replacement = [pid for pid in worker_pids(server) if pid != first]
        if replacement and response.headers.get(REPLICA) == replica_of(replacement[0]):
            break
    assert failures == 0
    assert replacement, server.log()[-3000:]
    assert not pid_alive(first)
    assert "worker 1 (pid" in server.log()
    assert "killed by SIGKILL" in server.log()


def test_streamlit_restarts_are_followed_by_the_worker(server: LiveServer) -> None:
    [worker] = worker_pids(server)
    first = server.state()
    os.kill(first["pid"], signal.SIGKILL)
    assert answer_from(server, replica_of(worker), "/api/readyz", 503)
    wait_for(lambda: server.state().get("generation") == first["generation"] + 1, 60, "the new generation")
    wait_for(lambda: server.state().get("state") == "ready", 60, "the new generation to be ready")
    assert answer_from(server, replica_of(worker), "/api/readyz", 200)
    assert answer_from(server, replica_of(worker), "/", 200)


def test_sigterm_stops_workers_and_streamlit_and_frees_the_port(tmp_path: Path) -> None:
    with LiveServer(tmp_path, "--workers", "3", "--graceful-timeout", "2").started() as live:
        wait_for(lambda: len(worker_pids(live)) == 2, 30, "two worker processes")
        workers, child = worker_pids(live), live.child_pid()
        assert live.stop(timeout=30) == 0
        assert not any(pid_alive(pid) for pid in [*workers, child])
        assert not live.state_file.exists()
        assert "second stop request" not in live.log()  # one SIGTERM per worker: each drained
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", live.port))


def test_sigkill_of_the_supervisor_takes_the_workers_down(tmp_path: Path) -> None:
    with LiveServer(tmp_path, "--workers", "2").started() as live:
        wait_for(lambda: len(worker_pids(live)) == 1, 30, "the worker process")
        [worker] = worker_pids(live)
        live.signal(signal.SIGKILL)
        live.wait_exit(10)
        wait_for(lambda: not pid_alive(worker), 5, "the orphaned worker to die")


def replicas_seen(client: httpx.Client, url: str, within: float = 30.0) -> set[str]:
    """The replica ids answering `url` until two were seen or `within` seconds passed; every answer is a 200."""
    seen: set[str] = set()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        response = client.get(url)
        assert response.status_code == 200
        seen.add(response.headers[REPLICA])
        if len(seen) == 2:
            break
    return seen


def test_workers_serve_tls_binds(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    live = LiveServer(tmp_path, "--workers", "2", "--certfile", str(cert), "--keyfile", str(key)).start()
    try:
        deadline = time.monotonic() + 60
        # A fresh connection per request, so both processes get a turn.
        with httpx.Client(verify=False, timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            poll_until_ready(client, f"https://127.0.0.1:{live.port}/api/readyz", deadline)
            assert len(replicas_seen(client, f"https://127.0.0.1:{live.port}/api/smoke")) == 2
            # Readiness may flap while a loaded machine starves Streamlit's health probe: the page must come
            # within the deadline, not on the first try.
            page = client.get(f"https://127.0.0.1:{live.port}/")
            while page.status_code != 200 and time.monotonic() < deadline + 30:
                time.sleep(0.2)
                page = client.get(f"https://127.0.0.1:{live.port}/")
            assert page.status_code == 200, (page.status_code, page.headers, page.text[:500], live.log()[-3000:])
    finally:
        live.stop()


def test_workers_serve_unix_binds(tmp_path: Path) -> None:
    from tests._live import free_port

    sock, port = tmp_path / "fluxlit.sock", free_port()
    live = LiveServer(tmp_path, "--workers", "2", "--bind", f"unix:{sock}", "--bind", f"127.0.0.1:{port}")
    live.base = f"http://127.0.0.1:{port}"
    with live.running():
        transport = httpx.HTTPTransport(uds=str(sock))
        with httpx.Client(transport=transport, timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            assert len(replicas_seen(client, "http://fluxlit/api/smoke")) == 2
    assert not sock.exists()
