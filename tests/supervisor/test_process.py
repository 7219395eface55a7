"""Spawning into a private process group and terminating it with escalation."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable

import anyio
import pytest
from fluxlit_supervisor.process import describe_returncode, pick_free_port, spawn_child, terminate_process_group

SLEEPER = "import time; time.sleep(60)"
SIGTERM_IGNORER = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('armed', flush=True); time.sleep(60)"
)


@pytest.mark.parametrize(
    ("returncode", "text"),
    [
        (0, "exit code 0"),
        (3, "exit code 3"),
        (-signal.SIGKILL, "killed by SIGKILL"),
        (-signal.SIGTERM, "killed by SIGTERM"),
        (-200, "killed by signal 200"),
        (None, "still running"),
    ],
)
def test_describe_returncode(returncode: int | None, text: str) -> None:
    assert describe_returncode(returncode) == text


def test_free_port_is_bindable() -> None:
    port = pick_free_port("127.0.0.1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_free_port_on_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        port = pick_free_port("::1")
    except OSError:
        pytest.skip("IPv6 loopback unavailable")
    assert 0 < port < 65536


@pytest.mark.anyio
async def test_child_runs_in_its_own_session_with_stdin_from_dev_null() -> None:
    proc = await spawn_child([sys.executable, "-c", SLEEPER], {"SUPERVISOR_TEST": "1"}, None)
    try:
        assert os.getsid(proc.pid) == proc.pid
        assert os.getpgid(proc.pid) == proc.pid
        assert os.readlink(f"/proc/{proc.pid}/fd/0") == "/dev/null"
        environ = await anyio.Path(f"/proc/{proc.pid}/environ").read_bytes()
        assert b"SUPERVISOR_TEST=1" in environ.split(b"\0")
    finally:
        await terminate_process_group(proc, 1.0)
    assert proc.returncode == -signal.SIGTERM


@pytest.mark.anyio
async def test_empty_argv_is_refused() -> None:
    with pytest.raises(ValueError, match="argv is empty"):
        await spawn_child([], {}, None)


@pytest.mark.anyio
async def test_terminate_escalates_to_sigkill_after_grace(pid_gone: Callable[[int], bool]) -> None:
    proc = await spawn_child([sys.executable, "-c", SIGTERM_IGNORER], {}, None)
    try:
        assert proc.stdout is not None
        assert await proc.stdout.readline() == b"armed\n"
        started = time.monotonic()
        await terminate_process_group(proc, 0.3)
        assert 0.25 < time.monotonic() - started < 3
    finally:
        await terminate_process_group(proc, 0.0)
    assert proc.returncode == -signal.SIGKILL
    assert pid_gone(proc.pid)


@pytest.mark.anyio
async def test_terminate_of_an_exited_child_returns_at_once() -> None:
    proc = await spawn_child([sys.executable, "-c", "pass"], {}, None)
    await proc.wait()
    started = time.monotonic()
    assert await terminate_process_group(proc, 10.0) == 0
    assert time.monotonic() - started < 1
