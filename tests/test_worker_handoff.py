"""What the serving process hands a `--workers` process: the settings of the run and the state file's path."""

from __future__ import annotations

from pathlib import Path

from fluxlit.config.settings import Settings
from fluxlit.runtime.worker_handoff import (
    SETTINGS_ENV,
    STATE_FILE_ENV,
    handoff_environment,
    settings_from_json,
    settings_to_json,
)


def test_settings_survive_the_json_hand_over() -> None:
    settings = Settings(binds=("127.0.0.1:9000", "unix:/tmp/x.sock"), workers=3, graceful_timeout_s=2.5)
    assert settings_from_json(settings_to_json(settings)) == settings


def test_the_handoff_environment_holds_exactly_the_settings_and_the_state_file(tmp_path: Path) -> None:
    settings = Settings(workers=2, root_path="/apps/demo")
    env = handoff_environment(settings, tmp_path / "state.json")
    assert set(env) == {SETTINGS_ENV, STATE_FILE_ENV}
    assert settings_from_json(env[SETTINGS_ENV]) == settings
    assert env[STATE_FILE_ENV] == str(tmp_path / "state.json")
