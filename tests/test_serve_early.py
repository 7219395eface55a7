"""`fluxlit serve` starts Streamlit before it imports the target: when it can, with what, and always stopped."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fluxlit_supervisor.early
import pytest

from fluxlit.config.sources import ResolvedSettings, load_settings
from fluxlit.runtime.early_start import streamlit_started_early
from fluxlit.runtime.streamlit_child import child_environment
from fluxlit.targets import target_exists


@dataclass
class FakeEarly:
    """Stands in for a PrestartedChild: records the command it was given and whether it was stopped."""

    argv: Callable[[int], Sequence[str]]
    env: Mapping[str, str]
    stops: list[int] = field(default_factory=list)

    def stop(self) -> None:
        self.stops.append(1)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[FakeEarly]:
    """Every early start requested, through a fake `fluxlit_supervisor.early.prestart`."""
    calls: list[FakeEarly] = []

    def fake_prestart(argv: Callable[[int], Sequence[str]], env: Mapping[str, str]) -> FakeEarly:
        calls.append(FakeEarly(argv, env))
        return calls[-1]

    monkeypatch.setattr(fluxlit_supervisor.early, "prestart", fake_prestart)
    return calls


@pytest.fixture
def app_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "early_app.py").write_text("raise RuntimeError('never imported by the check')\n")
    return "early_app.py:app"


def resolved(target: str, **cli: Any) -> ResolvedSettings:
    return load_settings({"target": target, **cli})


def test_starts_streamlit_with_the_settings_known_before_the_import(started: list[FakeEarly], app_file: str) -> None:
    settings = resolved(app_file, port=8123, root_path="/tools").settings
    with streamlit_started_early(resolved(app_file, port=8123, root_path="/tools")) as early:
        assert early is not None
        assert early.port == 8123
        assert not started[0].stops
    [call] = started
    argv = list(call.argv(4567))
    assert argv[argv.index("--server.port") + 1] == "4567"
    assert argv[argv.index("--server.baseUrlPath") + 1] == "/tools"
    assert call.env == child_environment(settings)
    assert call.env["FLUXLIT_INTERNAL_API_BASE"] == "http://127.0.0.1:8123/tools/api"
    assert call.stops == [1]


def test_port_zero_is_made_concrete_before_the_child_is_told_the_api_base(
    started: list[FakeEarly], app_file: str
) -> None:
    with streamlit_started_early(resolved(app_file, port=0)) as early:
        assert early is not None
        assert early.port != 0
        assert started[0].env["FLUXLIT_INTERNAL_API_BASE"] == f"http://127.0.0.1:{early.port}/api"


def test_the_child_is_stopped_when_the_block_fails(started: list[FakeEarly], app_file: str) -> None:
    with pytest.raises(SystemExit), streamlit_started_early(resolved(app_file)):
        raise SystemExit(3)
    assert started[0].stops == [1]


@pytest.mark.parametrize(
    ("target", "cli"),
    [
        pytest.param("missing_module_xyz:app", {}, id="target not found"),
        pytest.param("early_app.py:app", {"certfile": "cert.pem", "keyfile": "key.pem"}, id="tls"),
        pytest.param("early_app.py:app", {"binds": ("unix:/tmp/fluxlit-early.sock",)}, id="unix binds only"),
    ],
)
def test_no_early_start(started: list[FakeEarly], app_file: str, target: str, cli: dict[str, Any]) -> None:
    with streamlit_started_early(resolved(target, **cli)) as early:
        assert early is None
    assert started == []


def test_no_early_start_when_the_platform_cannot_watch_it(monkeypatch: pytest.MonkeyPatch, app_file: str) -> None:
    monkeypatch.setattr(fluxlit_supervisor.early, "pidfds_work", lambda: False)
    with streamlit_started_early(resolved(app_file)) as early:
        assert early is None


@pytest.mark.parametrize(
    ("spec", "found"),
    [
        ("early_app.py:app", True),
        ("./early_app.py", True),
        ("missing.py:app", False),
        ("early_app:app", True),  # a module in the working directory
        ("early_app.sub:app", True),  # only the top-level name is looked up: importing it would run its code
        ("json:loads", True),  # on sys.path
        ("sys:modules", True),  # already imported
        ("missing_module_xyz:app", False),
        ("not a target", False),
        ("", False),
    ],
)
def test_target_exists_without_importing_anything(app_file: str, spec: str, found: bool) -> None:
    assert target_exists(spec) is found
    assert "early_app" not in sys.modules


def test_target_exists_takes_an_absolute_path_and_a_base_directory(app_file: str, tmp_path: Path) -> None:
    assert target_exists(f"{tmp_path / 'early_app.py'}:app", cwd=Path("/"))
    assert target_exists("early_app:app", cwd=tmp_path)
    assert not target_exists("early_app.py:app", cwd=tmp_path / "elsewhere")
