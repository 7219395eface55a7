"""`fluxlit dev` pieces in-process: what is watched, where, a stubborn child, the chosen port, bad arguments."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fluxlit.cli import dev
from fluxlit.cli.main import main
from fluxlit.config.settings import Settings


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
