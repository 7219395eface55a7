"""`--workers N`: the setting, the settings hand-over to workers, and a worker's view of Streamlit's state file."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fluxlit_supervisor import UpstreamState, write_state_file
from fluxlit_supervisor.workers import FDS_ENV, INDEX_ENV

from fluxlit.cli.main import main
from fluxlit.config.settings import Settings
from fluxlit.config.sources import load_settings
from fluxlit.errors import ConfigError
from fluxlit.runtime.gateway_worker import StateFileStatus
from fluxlit.runtime.gateway_worker import main as worker_main
from fluxlit.runtime.serve_command import worker_spec
from fluxlit.runtime.worker_handoff import SETTINGS_ENV, STATE_FILE_ENV, settings_from_json, settings_to_json
from tests._inprocess import SigtermOnceHealthy


def test_workers_default_to_one(tmp_path: Path) -> None:
    resolved = load_settings(env={}, project_dir=tmp_path)
    assert resolved.settings.workers == 1
    assert resolved.sources["workers"] == "default"


def test_workers_come_from_flag_env_and_file_in_that_order(tmp_path: Path) -> None:
    (tmp_path / "fluxlit.toml").write_text("workers = 2\n")
    assert load_settings(env={}, project_dir=tmp_path).settings.workers == 2
    assert load_settings(env={"FLUXLIT_WORKERS": "3"}, project_dir=tmp_path).settings.workers == 3
    resolved = load_settings({"workers": 4}, env={"FLUXLIT_WORKERS": "3"}, project_dir=tmp_path)
    assert (resolved.settings.workers, resolved.sources["workers"]) == (4, "cli")


@pytest.mark.parametrize("value", ["0", "65", "two", "-1", "1.5"])
def test_workers_outside_1_to_64_name_the_value_and_the_range(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"FLUXLIT_WORKERS='{value}' .* from 1 to 64, e.g. 2"):
        load_settings(env={"FLUXLIT_WORKERS": value}, project_dir=tmp_path)


def test_workers_flag_is_validated_by_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["config", "--workers", "0", "--json"])
    assert result.exit_code == 2
    assert "--workers=0 is not valid" in result.output
    shown = CliRunner().invoke(main, ["config", "--workers", "2", "--json"])
    rows = {row["name"]: row for row in json.loads(shown.stdout)["settings"]}
    assert rows["workers"] == {**rows["workers"], "value": 2, "source": "cli", "flag": "--workers"}


def test_worker_spec_starts_n_minus_one_workers_following_the_state_file(tmp_path: Path) -> None:
    settings = Settings(workers=3, graceful_timeout_s=2.0)
    spec = worker_spec(settings, tmp_path / "state.json")
    assert spec.count == 2
    assert list(spec.argv) == [sys.executable, "-m", "fluxlit.runtime.gateway_worker"]
    assert spec.env[STATE_FILE_ENV] == str(tmp_path / "state.json")
    assert settings_from_json(spec.env[SETTINGS_ENV]) == settings
    assert spec.stop_grace > settings.graceful_timeout_s


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ready(port: int, generation: int = 1) -> UpstreamState:
    return UpstreamState(state="ready", host="127.0.0.1", port=port, pid=1, generation=generation)


def test_state_file_status_waits_for_the_file(tmp_path: Path) -> None:
    status = StateFileStatus(tmp_path / "state.json", lambda: False)
    current = status()
    assert current.state == "starting"
    assert not current.ready
    assert "state file" in current.detail


def test_state_file_status_follows_a_restart_after_the_check_interval(tmp_path: Path) -> None:
    path, clock = tmp_path / "state.json", Clock()
    write_state_file(path, ready(5001))
    status = StateFileStatus(path, lambda: False, check_interval=0.05, clock=clock)
    assert (status().ready, status().port) == (True, 5001)
    write_state_file(path, UpstreamState(state="restarting", host="127.0.0.1", generation=2))
    assert status().port == 5001  # within the interval: the cached view, no stat
    clock.now += 0.06
    restarting = status()
    assert (restarting.state, restarting.restarting, restarting.port) == ("restarting", True, None)
    write_state_file(path, ready(5002, generation=2))
    clock.now += 0.06
    assert (status().ready, status().port, status().generation) == (True, 5002, 2)


def test_state_file_status_reads_an_unchanged_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, clock = tmp_path / "state.json", Clock()
    write_state_file(path, ready(5001))
    status = StateFileStatus(path, lambda: False, clock=clock)
    status()
    reads: list[Path] = []
    monkeypatch.setattr(Path, "read_text", lambda self, **kw: reads.append(self) or "")
    clock.now += 1
    assert status().port == 5001
    assert reads == []


def test_state_file_status_reports_garbage_and_a_removed_file(tmp_path: Path) -> None:
    path, clock = tmp_path / "state.json", Clock()
    path.write_text("not json")
    status = StateFileStatus(path, lambda: False, clock=clock)
    assert status().state == "unknown"
    assert "unreadable" in status().detail
    write_state_file(path, ready(5001))
    clock.now += 1
    assert status().ready
    path.unlink()
    clock.now += 1
    assert status().state == "starting"


def test_state_file_status_says_stopping_once_this_process_stops(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_state_file(path, ready(5001))
    stopping = [False]
    status = StateFileStatus(path, lambda: stopping[0])
    assert status().ready
    stopping[0] = True
    assert (status().state, status().restarting) == ("stopping", True)


def test_a_stop_during_the_workers_imports_exits_cleanly() -> None:
    from fluxlit.runtime.gateway_worker import _exit_on_early_signal

    with pytest.raises(SystemExit) as exited:
        _exit_on_early_signal(15, None)
    assert exited.value.code == 0


@pytest.mark.usefixtures("restored_process_state")
def test_a_worker_serves_the_gateway_on_the_socket_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In this process, as the worker module runs: the supervisor's socket, its settings, its state file."""
    (tmp_path / "worker_api.py").write_text("from fastapi import FastAPI\n\napi = FastAPI()\n")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    fd = listener.detach()  # the worker's hypercorn owns and closes it, as with a passed fd
    settings = Settings(target=f"{tmp_path / 'worker_api.py'}:api", port=port, log_format="json")
    monkeypatch.setenv(SETTINGS_ENV, settings_to_json(settings))
    monkeypatch.setenv(STATE_FILE_ENV, str(tmp_path / "state.json"))
    monkeypatch.setenv(FDS_ENV, json.dumps({"secure": [], "insecure": [fd]}))
    monkeypatch.setenv(INDEX_ENV, "1")
    with SigtermOnceHealthy(f"http://127.0.0.1:{port}/api/healthz"):
        code = worker_main()
    assert code == 0
