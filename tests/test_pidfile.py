"""The pidfile of run/dev/workbench: who owns it, claiming it only from the dead, and removing only our own."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluxlit.cli.pidfile import (
    Owner,
    claim_pidfile,
    held_pidfile,
    inspect_pidfile,
    is_running,
    pidfile_location,
    pidfile_path,
    process_started_at,
    release_pidfile,
)
from fluxlit.config.settings import Settings
from fluxlit.errors import ConfigError


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is not this one, stopped by its PID afterwards."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the PID names nothing now
    return proc.pid


def write(path: Path, text: str, *, age_s: float = 0.0) -> Path:
    path.write_text(text)
    if age_s:
        past = time.time() - age_s
        os.utime(path, (past, past))
    return path


def test_the_default_pidfile_is_the_references_name_in_the_current_directory(tmp_path: Path) -> None:
    assert pidfile_path(Settings(), cwd=tmp_path) == tmp_path / ".fluxlit-dev.pid"
    assert pidfile_path(Settings(pidfile="run/app.pid"), cwd=tmp_path) == tmp_path / "run" / "app.pid"
    assert pidfile_path(Settings(no_pidfile=True), cwd=tmp_path) is None
    assert pidfile_location(Settings(no_pidfile=True), cwd=tmp_path) == tmp_path / ".fluxlit-dev.pid"


def test_an_empty_pidfile_setting_means_the_default_file_as_in_the_reference() -> None:
    assert Settings(pidfile="  ").pidfile == ".fluxlit-dev.pid"


def test_a_missing_file_has_no_owner(tmp_path: Path) -> None:
    assert inspect_pidfile(tmp_path / "none.pid").owner is Owner.MISSING


@pytest.mark.parametrize("text", ["", "abc\n", "0\n", "-1\n", "12 34\n"])
def test_anything_but_one_positive_pid_is_invalid(tmp_path: Path, text: str) -> None:
    # 0 and -1 above all: os.kill would signal a whole process group, or every process we may signal.
    state = inspect_pidfile(write(tmp_path / "x.pid", text))
    assert (state.owner, state.pid) == (Owner.INVALID, None)


def test_an_unreadable_pidfile_is_invalid(tmp_path: Path) -> None:
    (tmp_path / "dir.pid").mkdir()
    assert inspect_pidfile(tmp_path / "dir.pid").owner is Owner.INVALID


def test_a_live_process_owns_its_pidfile(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    state = inspect_pidfile(write(tmp_path / "x.pid", f"{sleeper.pid}\n"))
    assert (state.owner, state.pid) == (Owner.LIVE, sleeper.pid)


def test_a_dead_pid_is_stale(tmp_path: Path) -> None:
    pid = dead_pid()
    assert inspect_pidfile(write(tmp_path / "x.pid", f"{pid}\n")).owner is Owner.STALE


def test_this_process_never_owns_a_file_it_did_not_claim(tmp_path: Path) -> None:
    # A container's first process is PID 1 on every start: the file a previous start left names "us".
    assert inspect_pidfile(write(tmp_path / "x.pid", f"{os.getpid()}\n")).owner is Owner.STALE


def test_a_zombie_is_not_running(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while (Path("/proc") / str(proc.pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        assert not is_running(proc.pid, written_at=time.time())
    finally:
        proc.wait()


def test_a_pid_reused_by_a_process_younger_than_the_file_is_stale(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    # The file is an hour old; the process behind its PID started a moment ago, so it did not write it.
    assert inspect_pidfile(write(tmp_path / "x.pid", f"{sleeper.pid}\n", age_s=3600)).owner is Owner.STALE


def test_process_start_times_come_from_proc(sleeper: subprocess.Popen[bytes]) -> None:
    started = process_started_at(sleeper.pid)
    assert started is not None
    assert abs(started - time.time()) < 60


def test_without_proc_a_live_pid_owns_the_file_whatever_its_age(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    # macOS has no /proc: no start time, no zombie state; kill(pid, 0) alone decides.
    assert process_started_at(sleeper.pid, proc=tmp_path / "no-proc") is None
    assert is_running(sleeper.pid, written_at=0.0, proc=tmp_path / "no-proc")


def test_another_users_process_counts_as_running(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(pid: int, signum: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", denied)
    assert is_running(1, written_at=time.time(), proc=Path("/nonexistent"))


def test_claiming_writes_this_pid_with_mode_0644_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "app.pid"
    old = os.umask(0o077)
    try:
        claim_pidfile(path)
    finally:
        os.umask(old)
    assert path.read_text() == f"{os.getpid()}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize("text", ["garbage", "DEAD"])
def test_claiming_replaces_a_stale_or_invalid_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "x.pid", f"{dead_pid()}\n" if text == "DEAD" else text)
    claim_pidfile(path)
    assert path.read_text() == f"{os.getpid()}\n"


def test_claiming_a_file_a_live_process_owns_writes_nothing_and_names_the_pid_and_the_fix(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    path = write(tmp_path / "x.pid", f"{sleeper.pid}\n")
    with pytest.raises(ConfigError) as caught:
        claim_pidfile(path)
    assert path.read_text() == f"{sleeper.pid}\n"
    message = str(caught.value)
    assert f"belongs to process {sleeper.pid}, which is still running" in message
    assert f"fluxlit shutdown --pidfile {path}" in message
    assert "--no-pidfile" in message
    assert caught.value.exit_code == 2


def test_a_pidfile_that_cannot_be_written_is_a_config_error_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"cannot write the pidfile .*file/x\.pid .*--no-pidfile"):
        claim_pidfile(tmp_path / "file" / "x.pid")  # its directory is a file


def test_releasing_removes_only_a_file_that_still_names_us(tmp_path: Path) -> None:
    path = write(tmp_path / "x.pid", "4242\n")
    release_pidfile(path)
    assert path.exists()  # a later run took it over: not ours to remove
    release_pidfile(path, 4242)
    assert not path.exists()
    release_pidfile(path)  # already gone: nothing to do


def test_a_held_pidfile_is_removed_when_the_block_fails(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    seen: list[str] = []

    def crash() -> None:
        with held_pidfile(path):
            seen.append(path.read_text())
            raise RuntimeError("the server crashed")

    with pytest.raises(RuntimeError):
        crash()
    assert seen == [f"{os.getpid()}\n"]
    assert not path.exists()


def test_holding_no_pidfile_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with held_pidfile(None):
        assert list(tmp_path.iterdir()) == []


def test_a_signal_that_stops_the_server_still_removes_the_pidfile(tmp_path: Path) -> None:
    # SIGTERM before the server installed its own handler ends the block with SystemExit, as `serve` does.
    path = tmp_path / "x.pid"

    def stopped_while_serving() -> None:
        with held_pidfile(path):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)

    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        with pytest.raises(SystemExit):
            stopped_while_serving()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not path.exists()
