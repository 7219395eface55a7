"""`fluxlit shutdown`: SIGTERM (then, with --force, SIGKILL) to the pidfile's PID, with the reference's exit codes;
and (slow) a real `fluxlit run` stopped by it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from fluxlit.cli.main import main
from fluxlit.cli.shutdown import ShutdownCode, stop_pidfile_owner
from tests._live import SMOKE_APP, free_port, pid_alive

IGNORES_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("FLUXLIT_")]:
        monkeypatch.delenv(name)
    return CliRunner()


def spawn(code: str = "import time; time.sleep(60)") -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    if "ready" in code:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"  # its handler is in place: SIGTERM cannot kill it now
    return proc


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = spawn()
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def stubborn() -> Iterator[subprocess.Popen[bytes]]:
    proc = spawn(IGNORES_SIGTERM)
    yield proc
    proc.kill()
    proc.wait()


def pidfile_of(proc: subprocess.Popen[bytes], path: Path) -> Path:
    path.write_text(f"{proc.pid}\n")  # written after the process started, as a run writes its own
    return path


def test_a_running_process_is_stopped_with_sigterm_and_its_pidfile_removed(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    path = pidfile_of(sleeper, tmp_path / "x.pid")
    code, message = stop_pidfile_owner(path, force=False, wait=10)
    assert (code, message) == (ShutdownCode.STOPPED, f"stopped process {sleeper.pid}")
    assert sleeper.wait(timeout=5) == -15
    assert not path.exists()


def test_no_pidfile_exits_2_saying_how_to_name_one(runner: CliRunner) -> None:
    result = runner.invoke(main, ["shutdown"])
    assert result.exit_code == 2
    assert "no pidfile at" in result.output
    assert ".fluxlit-dev.pid" in result.output
    assert "--pidfile PATH" in result.output


@pytest.mark.parametrize("content", ["not a pid\n", "DEAD"])
def test_a_stale_or_invalid_pidfile_is_removed_and_exits_0(runner: CliRunner, tmp_path: Path, content: str) -> None:
    if content == "DEAD":
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        content = f"{proc.pid}\n"
    (tmp_path / ".fluxlit-dev.pid").write_text(content)
    result = runner.invoke(main, ["shutdown"])
    assert result.exit_code == 0, result.output
    assert "removed" in result.output
    assert not (tmp_path / ".fluxlit-dev.pid").exists()


def test_a_process_still_running_after_the_wait_exits_1_and_suggests_force(
    runner: CliRunner, tmp_path: Path, stubborn: subprocess.Popen[bytes]
) -> None:
    pidfile_of(stubborn, tmp_path / "app.pid")
    result = runner.invoke(main, ["shutdown", "--pidfile", "app.pid", "--wait", "0.2"])
    assert result.exit_code == 1, result.output
    assert f"process {stubborn.pid} is still running 0.2s after SIGTERM" in result.output
    assert "--force" in result.output
    assert stubborn.poll() is None
    assert (tmp_path / "app.pid").exists()  # it still runs: its pidfile still names it


def test_force_kills_what_sigterm_did_not_stop(
    runner: CliRunner, tmp_path: Path, stubborn: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUXLIT_PIDFILE", str(pidfile_of(stubborn, tmp_path / "env.pid")))
    result = runner.invoke(main, ["shutdown", "-f", "--wait", "0.2"])
    assert result.exit_code == 0, result.output
    assert f"killed process {stubborn.pid}" in result.output
    assert stubborn.wait(timeout=5) == -9
    assert not (tmp_path / "env.pid").exists()


def test_a_process_that_survives_sigkill_too_exits_1(
    tmp_path: Path, stubborn: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process in uninterruptible sleep (a hung NFS read) outlives SIGKILL for a while: the signals are sent,
    # so the kill is faked to be lost.
    real_kill = os.kill
    monkeypatch.setattr(os, "kill", lambda pid, signum: real_kill(pid, 0))
    monkeypatch.setattr("fluxlit.cli.shutdown.KILL_WAIT_S", 0.1)
    code, message = stop_pidfile_owner(pidfile_of(stubborn, tmp_path / "x.pid"), force=True, wait=0.1)
    assert code is ShutdownCode.STILL_RUNNING
    assert message.endswith("wait longer (--wait SECONDS)")


def test_a_process_we_may_not_signal_exits_1_naming_the_user_to_run_as(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(pid: int, signum: int) -> None:
        if signum:
            raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", denied)
    code, message = stop_pidfile_owner(pidfile_of(sleeper, tmp_path / "x.pid"), force=True, wait=1)
    assert code is ShutdownCode.STILL_RUNNING
    assert "not allowed to signal process" in message
    assert "as the user who started it" in message


def test_a_process_that_exits_before_the_signal_counts_as_stopped(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    def gone(pid: int, signum: int) -> None:
        if signum:
            raise ProcessLookupError(3, "No such process")

    monkeypatch.setattr(os, "kill", gone)
    path = pidfile_of(sleeper, tmp_path / "x.pid")
    code, message = stop_pidfile_owner(path, force=False, wait=1)
    assert code is ShutdownCode.STOPPED
    assert "exited before the signal reached it" in message
    assert not path.exists()


def test_a_bad_pidfile_setting_exits_2_naming_it(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "fluxlit.toml").write_text("pidfile = 3\n")
    result = runner.invoke(main, ["shutdown"])
    assert result.exit_code == 2
    assert "pidfile" in result.output
    assert "a string" in result.output


@pytest.mark.slow
def test_fluxlit_run_writes_its_pidfile_and_fluxlit_shutdown_stops_it(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXLIT_")}
    argv = [sys.executable, "-m", "fluxlit", "run", f"{SMOKE_APP}:app", "--port", str(port), "--log-format", "json"]
    log = (tmp_path / "run.log").open("wb")
    server = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    pidfile = tmp_path / ".fluxlit-dev.pid"
    try:
        deadline = time.monotonic() + 90
        while not (pidfile.exists() and _ready(port)):
            assert server.poll() is None, (tmp_path / "run.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "fluxlit run never became ready"
            time.sleep(0.1)
        assert pidfile.read_text() == f"{server.pid}\n"
        assert oct(pidfile.stat().st_mode & 0o777) == "0o644"
        stop = subprocess.run(
            [sys.executable, "-m", "fluxlit", "shutdown", "--wait", "30"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert (stop.returncode, stop.stdout.strip()) == (0, f"fluxlit shutdown: stopped process {server.pid}")
        assert server.wait(timeout=10) == 0, (tmp_path / "run.log").read_text()[-4000:]
        assert not pid_alive(server.pid)
        assert not pidfile.exists()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
