"""fluxlit_supervisor.run in a real process: signals, parent death, and PID 1 reaping."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

pytestmark = pytest.mark.slow

ENTRY_SCRIPT = """
import sys
from pathlib import Path

import fluxlit_supervisor
from fluxlit_supervisor import ChildSpec, RestartPolicy, RunSpec, ServeConfig, StateHub

fake_child, port, state_file, *child_args = sys.argv[1:]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def argv(child_port):
    command = [sys.executable, fake_child, "--port", str(child_port), *child_args]
    if "--orphan" not in child_args:
        return command
    # A subshell that exits at once leaves `sleep` orphaned: it is adopted by PID 1, the supervisor.
    command.remove("--orphan")
    return ["sh", "-c", '(sleep 1 &); exec "$@"', "sh", *command]


hub = StateHub()
hub.subscribe(lambda s: print(f"STATE {s.state} {s.generation} {s.pid}", flush=True))
spec = RunSpec(
    app,
    ServeConfig(binds=(f"127.0.0.1:{port}",), graceful_timeout=2.0),
    ChildSpec(argv=argv, start_timeout=10.0, stop_grace=2.0),
    RestartPolicy(backoff_initial=0.05),
    hub,
    Path(state_file),
    ready_callback=lambda: print("READY", flush=True),
)
code = fluxlit_supervisor.run(spec)
print(f"EXIT {code}", flush=True)
sys.exit(code)
"""


class Supervised:
    """A supervisor process whose stdout protocol lines can be awaited (with deadlines)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []

    def wait_line(self, predicate: Callable[[str], bool], within: float = 15.0) -> str:
        deadline = time.monotonic() + within
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            # The supervisor prints a line at least on every state change; readline returns at EOF too.
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.strip())
            if predicate(line.strip()):
                return line.strip()
        raise AssertionError(f"no matching line within {within}s; got {self.lines}")

    def ready_child_pid(self) -> int:
        self.wait_line(lambda line: line == "READY")
        ready = [line for line in self.lines if line.startswith("STATE ready")]
        return int(ready[-1].split()[3])


@pytest.fixture
def launch(tmp_path: Path, fake_child_path: Path, free_port: Any) -> Iterator[Callable[..., Supervised]]:
    script = tmp_path / "entry.py"
    script.write_text(ENTRY_SCRIPT)
    started: list[subprocess.Popen[str]] = []

    def start(*child_args: str, prefix: tuple[str, ...] = ()) -> Supervised:
        command = [*prefix, sys.executable, str(script), str(fake_child_path), str(free_port())]
        command += [str(tmp_path / "upstream.json"), *child_args]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
        started.append(proc)
        return Supervised(proc)

    yield start
    for proc in started:
        for member in _descendants(proc.pid):
            _kill(member)
        _kill(proc.pid)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _descendants(pid: int) -> list[int]:
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pid: int, within: float) -> bool:
    try:
        psutil.Process(pid).wait(timeout=within)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    return True


def test_sigterm_stops_cleanly_with_exit_0_and_no_orphan(launch: Callable[..., Supervised], tmp_path: Path) -> None:
    run = launch()
    child = run.ready_child_pid()
    assert (tmp_path / "upstream.json").exists()
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=15) == 0
    assert _wait_gone(child, 2)
    assert not (tmp_path / "upstream.json").exists()


def test_sighup_restarts_the_child_and_keeps_serving(launch: Callable[..., Supervised]) -> None:
    run = launch()
    first = run.ready_child_pid()
    run.proc.send_signal(signal.SIGHUP)
    second = run.wait_line(lambda line: line.startswith("STATE ready 2"))
    assert int(second.split()[3]) != first
    run.proc.send_signal(signal.SIGINT)
    assert run.proc.wait(timeout=15) == 0


def test_killing_the_supervisor_takes_the_child_down(launch: Callable[..., Supervised]) -> None:
    run = launch()
    child = run.ready_child_pid()
    run.proc.kill()
    run.proc.wait(timeout=5)
    assert _wait_gone(child, 2), "the child survived its parent: PR_SET_PDEATHSIG did not fire"


def test_second_sigterm_skips_the_drain(launch: Callable[..., Supervised]) -> None:
    run = launch("--ignore-sigterm")
    child = run.ready_child_pid()
    started = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=15) == 0
    assert time.monotonic() - started < 1.5
    assert _wait_gone(child, 2)


@pytest.mark.external("pid-namespace")
def test_as_pid_1_adopted_orphans_are_reaped(launch: Callable[..., Supervised]) -> None:
    run = launch("--orphan", prefix=("unshare", "--pid", "--fork", "--mount-proc"))
    run.ready_child_pid()
    supervisor = psutil.Process(run.proc.pid).children()[0]
    adopted = [p for p in supervisor.children() if p.name() == "sleep"]
    assert adopted, "the orphan was not adopted by the supervisor; the test proves nothing"
    orphan = adopted[0]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _running(orphan):
        time.sleep(0.05)
    # The reaper sweeps on SIGCHLD and at least every second.
    time.sleep(1.5)
    zombies = [p.pid for p in supervisor.children() if p.status() == psutil.STATUS_ZOMBIE]
    assert zombies == []
    supervisor.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=15) == 0
