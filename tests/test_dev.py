"""`fluxlit dev`'s restart loop, run in this process with a stand-in for `serve` that records each start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from fluxlit.cli import dev
from fluxlit.cli.main import main
from fluxlit.config.settings import Settings

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


@pytest.mark.usefixtures("restored_process_state")
def test_the_watcher_owns_the_pidfile_while_it_runs_and_removes_it_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def record(runner: dev.DevRunner) -> int:
        seen.append((tmp_path / "dev.pid").read_text())
        seen.append(" ".join(runner.serve_argv))
        return 0

    monkeypatch.setattr(dev.DevRunner, "run", record)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["dev", "app:app", "--pidfile", "dev.pid", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert seen[0] == f"{os.getpid()}\n"
    assert "--pidfile" not in seen[1]  # consumed by dev: the serve it restarts writes none
    assert not (tmp_path / "dev.pid").exists()


@pytest.mark.usefixtures("restored_process_state")
def test_dev_with_no_pidfile_writes_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The stand-in exits with the number of pidfiles there while dev runs.
    monkeypatch.setattr(dev.DevRunner, "run", lambda runner: os.listdir(tmp_path).count(".fluxlit-dev.pid"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["dev", "--no-pidfile", "app:app", "--port", "8123"])
    assert result.exit_code == 0, result.output


def test_dev_refuses_to_start_while_the_pidfiles_owner_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev.DevRunner, "run", lambda runner: pytest.fail("dev started"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLUXLIT_PIDFILE", raising=False)
    (tmp_path / ".fluxlit-dev.pid").write_text(f"{os.getppid()}\n")  # pytest's parent: alive, and older
    result = CliRunner().invoke(main, ["dev", "app:app", "--port", "8123"])
    assert result.exit_code == 2
    assert f"belongs to process {os.getppid()}" in result.output


# --- what is watched, a stubborn child, the port every restart reuses, bad arguments ---


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x = 1\n")
    return path


def test_hidden_cache_and_virtualenv_directories_are_not_watched(tmp_path: Path) -> None:
    kept = [touch(tmp_path / "app.py"), touch(tmp_path / "pkg" / "mod.py"), touch(tmp_path / "fluxlit.toml")]
    touch(tmp_path / "notes.txt")
    touch(tmp_path / ".git" / "hook.py")
    touch(tmp_path / "__pycache__" / "app.py")
    touch(tmp_path / "node_modules" / "x.py")
    touch(tmp_path / "myenv" / "pyvenv.cfg")
    touch(tmp_path / "myenv" / "lib" / "site.py")
    assert sorted(dev.snapshot([tmp_path])) == sorted(str(p) for p in kept)


def test_a_dangling_symlink_is_not_watched(tmp_path: Path) -> None:
    touch(tmp_path / "app.py")
    (tmp_path / "gone.py").symlink_to(tmp_path / "deleted.py")
    assert list(dev.snapshot([tmp_path])) == [str(tmp_path / "app.py")]


def test_watching_stops_at_the_file_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev, "MAX_WATCHED_FILES", 3)
    for index in range(5):
        touch(tmp_path / f"m{index}.py")
    assert len(dev.snapshot([tmp_path])) == 3


def test_watch_roots_add_the_target_directory_and_extra_ones_once(tmp_path: Path) -> None:
    cwd, elsewhere, extra = tmp_path / "cwd", tmp_path / "apps", tmp_path / "lib"
    for directory in (cwd / "sub", elsewhere, extra):
        directory.mkdir(parents=True)
    roots = dev.watch_roots("../apps/main.py:app", cwd, [str(extra), "sub", "missing-dir", str(extra)])
    assert roots == [cwd.resolve(), extra.resolve(), elsewhere.resolve()]


def test_a_malformed_target_still_watches_the_working_directory(tmp_path: Path) -> None:
    assert dev.watch_roots("not a module!:app", tmp_path) == [tmp_path.resolve()]


def test_stopping_without_a_child_reports_no_exit_code() -> None:
    assert dev.DevRunner([], [], poll_interval=1.0).stop_child() is None


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dev, "STOP_GRACE_S", 0.3)
    stubborn = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    runner = dev.DevRunner([], [], poll_interval=1.0)
    runner.child = subprocess.Popen(
        [sys.executable, "-c", stubborn], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        assert runner.child.stdout is not None
        assert runner.child.stdout.readline() == b"ready\n"
        assert runner.stop_child() == -signal.SIGKILL
    finally:
        if runner.child.poll() is None:
            runner.child.kill()
        runner.child.wait()
        runner.child.stdout.close()  # type: ignore[union-attr]
    assert f"serve (pid {runner.child.pid}) did not stop within 0s: killing it" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_port_zero_is_replaced_by_one_free_port_for_every_restart(host: str) -> None:
    args = dev._concrete_port_args(Settings(host=host, port=0))
    assert args[0] == "--port"
    assert 0 < int(args[1]) < 65536


def test_an_explicit_port_or_bind_is_left_alone() -> None:
    assert dev._concrete_port_args(Settings(port=8123)) == []
    assert dev._concrete_port_args(Settings(port=0, binds=("127.0.0.1:8124",))) == []


def test_dev_rejects_a_bad_serve_flag_like_serve_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["dev", "--port", "eighty"])
    assert result.exit_code == 2
    assert "'eighty' is not a valid integer" in result.output


def test_dev_rejects_a_bad_setting_with_its_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("FLUXLIT_")]:
        monkeypatch.delenv(name)
    result = CliRunner().invoke(main, ["dev", "--api-prefix", "api/"])
    assert result.exit_code == 2
    assert "fluxlit: error: " in result.output
    assert "'api/'" in result.output


@pytest.mark.parametrize(("flags", "verb"), [(["--no-reload"], "run"), (["--no-reload", "--workbench"], "workbench")])
def test_dev_without_reload_becomes_run_with_the_same_arguments(
    flags: list[str], verb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fluxlit 0.13: `dev` without --reload is `run`. The exec is replaced by a recorder that stops like exec would.
    execs: list[list[str]] = []

    def record(path: str, argv: list[str]) -> None:
        execs.append(argv)
        raise SystemExit(0)

    monkeypatch.setattr(dev.os, "execv", record)
    monkeypatch.setattr(dev.DevRunner, "run", lambda runner: pytest.fail("dev watched"))
    result = CliRunner().invoke(
        main, ["dev", *flags, "--pidfile", "x.pid", "--no-pidfile", "app:app", "--port", "8123"]
    )
    assert result.exit_code == 0, result.output
    assert execs == [
        [sys.executable, "-m", "fluxlit", verb, "app:app", "--port", "8123", "--pidfile", "x.pid", "--no-pidfile"]
    ]


@pytest.mark.usefixtures("restored_process_state")
def test_dev_reload_scope_gateway_reloads_everything_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dev.DevRunner, "run", lambda runner: 0)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["dev", "--reload", "--reload-scope", "gateway", "--no-pidfile", "app:app"])
    assert result.exit_code == 0, result.output
    assert "reloads everything here" in result.output


def test_dev_refuses_an_unknown_reload_scope_with_exit_2() -> None:
    result = CliRunner().invoke(main, ["dev", "--reload-scope", "pages", "app:app"])
    assert result.exit_code == 2
    assert "'pages' is not one of 'full', 'gateway'" in result.output


@pytest.mark.usefixtures("restored_process_state")
@pytest.mark.parametrize(("flags", "trusts"), [([], True), (["--no-trust-proxy"], False)])
def test_dev_workbench_trusts_the_proxy_unless_told_otherwise(
    flags: list[str], trusts: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[dev.DevRunner] = []
    monkeypatch.setattr(dev.DevRunner, "run", lambda runner: built.append(runner) or 0)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["dev", "--workbench", "--no-pidfile", "app:app", "--port", "8123", *flags])
    assert result.exit_code == 0, result.output
    assert ("--trust-proxy" in built[0].serve_argv) is trusts
