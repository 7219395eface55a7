"""Spawning into a private process group and terminating it with escalation."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from fluxlit_supervisor.process import (
    SpawnOptions,
    describe_returncode,
    pick_free_port,
    popen_child,
    signal_group,
    spawn_child,
    stop_process_group,
    stop_process_group_blocking,
)

SLEEPER = "import time; time.sleep(60)"
PIPED = SpawnOptions(capture_output=True)
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
    proc = await spawn_child([sys.executable, "-c", SLEEPER], SpawnOptions(env={"SUPERVISOR_TEST": "1"}))
    try:
        assert os.getsid(proc.pid) == proc.pid
        assert os.getpgid(proc.pid) == proc.pid
        assert os.readlink(f"/proc/{proc.pid}/fd/0") == "/dev/null"
        environ = await anyio.Path(f"/proc/{proc.pid}/environ").read_bytes()
        assert b"SUPERVISOR_TEST=1" in environ.split(b"\0")
    finally:
        await stop_process_group(proc, 1.0)
    assert proc.returncode == -signal.SIGTERM


@pytest.mark.anyio
async def test_empty_argv_is_refused() -> None:
    with pytest.raises(ValueError, match="argv is empty"):
        await spawn_child([], PIPED)


@pytest.mark.anyio
async def test_stop_escalates_to_sigkill_after_grace(pid_gone: Callable[[int], bool]) -> None:
    proc = await spawn_child([sys.executable, "-c", SIGTERM_IGNORER], PIPED)
    try:
        assert proc.stdout is not None
        assert await proc.stdout.readline() == b"armed\n"
        started = time.monotonic()
        await stop_process_group(proc, 0.3)
        assert 0.25 < time.monotonic() - started < 3
    finally:
        await stop_process_group(proc, 0.0)
    assert proc.returncode == -signal.SIGKILL
    assert pid_gone(proc.pid)


@pytest.mark.anyio
async def test_stop_of_an_exited_child_returns_at_once() -> None:
    proc = await spawn_child([sys.executable, "-c", "pass"], PIPED)
    await proc.wait()
    started = time.monotonic()
    assert await stop_process_group(proc, 10.0) == 0
    assert time.monotonic() - started < 1


def test_the_environment_is_ours_minus_the_unset_names_plus_the_given_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEPT", "1")
    monkeypatch.setenv("DROPPED", "1")
    env = SpawnOptions(env={"ADDED": "2", "DROPPED": "3"}, unset_env=("DROPPED", "KEPT_NOT")).environment()
    assert (env["KEPT"], env["ADDED"], env["DROPPED"]) == ("1", "2", "3")  # given names win over unset ones
    assert "DROPPED" not in SpawnOptions(unset_env=("DROPPED",)).environment()


def test_output_is_inherited_unless_captured() -> None:
    assert SpawnOptions().popen_arguments()["stdout"] is None
    assert SpawnOptions(capture_output=True).popen_arguments()["stderr"] == subprocess.PIPE


@pytest.mark.anyio
async def test_a_stop_told_the_signal_went_out_already_sends_no_second_one() -> None:
    counter = "import signal, time; signal.signal(signal.SIGTERM, lambda *a: print('term', flush=True)); "
    proc = await spawn_child([sys.executable, "-c", counter + "print('armed', flush=True); time.sleep(60)"], PIPED)
    assert proc.stdout is not None
    assert await proc.stdout.readline() == b"armed\n"
    os.killpg(proc.pid, signal.SIGTERM)
    assert await proc.stdout.readline() == b"term\n"
    assert await stop_process_group(proc, 0.3, first_signal=None) == -signal.SIGKILL
    assert await proc.stdout.read() == b""  # no second "term"


@pytest.mark.anyio
async def test_a_set_hurry_kills_at_once_and_is_reported_as_forced() -> None:
    kills: list[tuple[int, float, bool]] = []
    hurry = anyio.Event()
    hurry.set()
    proc = await spawn_child([sys.executable, "-c", SIGTERM_IGNORER], PIPED)
    assert proc.stdout is not None
    assert await proc.stdout.readline() == b"armed\n"
    started = time.monotonic()
    code = await stop_process_group(proc, 30.0, hurry=hurry, on_kill=lambda *kill: kills.append(kill))
    assert (code, kills) == (-signal.SIGKILL, [(proc.pid, 30.0, True)])
    assert time.monotonic() - started < 3


def test_a_blocking_stop_escalates_to_sigkill_after_grace(pid_gone: Callable[[int], bool]) -> None:
    kills: list[tuple[int, float, bool]] = []
    popen = popen_child([sys.executable, "-c", SIGTERM_IGNORER], PIPED)
    try:
        assert popen.stdout is not None
        assert popen.stdout.readline() == b"armed\n"
        code = stop_process_group_blocking(popen, 0.3, on_kill=lambda *kill: kills.append(kill))
    finally:
        for pipe in (popen.stdout, popen.stderr):
            if pipe is not None:
                pipe.close()
    assert (code, kills) == (-signal.SIGKILL, [(popen.pid, 0.3, False)])
    assert pid_gone(popen.pid)


def test_a_blocking_stop_of_a_cooperative_child_sends_only_the_first_signal() -> None:
    popen = popen_child([sys.executable, "-c", SLEEPER], SpawnOptions())
    assert stop_process_group_blocking(popen, 10.0, first_signal=signal.SIGINT) == -signal.SIGINT


def test_an_empty_argv_is_refused_from_sync_code_too() -> None:
    with pytest.raises(ValueError, match="argv is empty"):
        popen_child([], SpawnOptions())


def test_signalling_a_group_that_does_not_exist_reports_false() -> None:
    impossible = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # no process or group can have it
    assert signal_group(impossible, 0) is False
