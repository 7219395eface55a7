"""`fluxlit dev`'s restart loop, run in this process with a stand-in for `serve` that records each start."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from fluxlit.cli import dev
from fluxlit.cli.main import main

# A stand-in for `python -m fluxlit serve`: notes its start in a file, then serves until SIGTERM (exit 0).
FAKE_SERVE = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with open(sys.argv[1], "a") as starts:
    starts.write("started\\n")
time.sleep(60)
"""


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def starts(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def drive(runner: dev.DevRunner, steps: Callable[[], None]) -> int:
    """Run the loop here (it forks, so it owns the children) while `steps` acts from a side thread."""
    failure: list[BaseException] = []

    def act() -> None:
        try:
            steps()
        except BaseException as error:  # reported by the test below, after the loop stopped
            failure.append(error)
        finally:
            runner.request_stop(signal.SIGTERM)

    side = threading.Thread(target=act)
    side.start()
    code = runner.run()
    side.join()
    if failure:
        raise failure[0]
    return code


def test_a_change_restarts_serve_and_a_signal_stops_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, log = tmp_path / "app.py", tmp_path / "starts.log"
    source.write_text("x = 1\n")
    runner = dev.DevRunner([sys.executable, "-c", FAKE_SERVE, str(log)], [tmp_path], poll_interval=0.05)

    def edit_once() -> None:
        wait_for(lambda: starts(log) == 1)
        source.write_text("x = 2\n")
        wait_for(lambda: starts(log) == 2)

    assert drive(runner, edit_once) == 0
    assert runner.child is not None
    assert runner.child.poll() is not None
    assert "app.py changed: restarting" in capsys.readouterr().err


def test_serve_that_exits_waits_for_the_next_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, log = tmp_path / "app.py", tmp_path / "starts.log"
    source.write_text("x = 1\n")
    crashes = f"open({str(log)!r}, 'a').write('started\\n'); raise SystemExit(1)"
    runner = dev.DevRunner([sys.executable, "-c", crashes], [tmp_path], poll_interval=0.05)

    def edit_after_the_crash() -> None:
        wait_for(lambda: "waiting for a change" in capsys.readouterr().err)
        source.write_text("x = 2\n")
        wait_for(lambda: starts(log) == 2)

    drive(runner, edit_after_the_crash)


def test_a_port_in_use_stops_dev_with_serves_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = dev.DevRunner([sys.executable, "-c", "raise SystemExit(6)"], [tmp_path], poll_interval=0.05)
    assert runner.run() == 6
    assert "which no code change can fix" in capsys.readouterr().err


@pytest.mark.usefixtures("restored_process_state")
def test_dev_runs_serve_with_its_flags_on_one_port_and_watches_the_extra_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[dev.DevRunner] = []

    def record(runner: dev.DevRunner) -> int:
        built.append(runner)
        return 0

    monkeypatch.setattr(dev.DevRunner, "run", record)
    project, shared = tmp_path / "project", tmp_path / "shared"
    project.mkdir()
    shared.mkdir()
    monkeypatch.chdir(project)
    args = ["dev", "--watch", str(shared), "app:app", "--log-level", "debug", "--port", "0"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (runner,) = built
    prefix = [sys.executable, "-m", "fluxlit", "serve", "app:app", "--log-level", "debug", "--port", "0", "--port"]
    assert runner.serve_argv[: len(prefix)] == prefix
    assert int(runner.serve_argv[-1]) > 0  # the same concrete port for every restart
    assert runner.roots == [project.resolve(), shared.resolve()]
    assert signal.getsignal(signal.SIGTERM) == runner.request_stop
