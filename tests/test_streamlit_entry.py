"""The bundled Streamlit entrypoint: its path, the child's argv, and what it renders for each kind of target."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit

from fluxlit import streamlit_main_path
from fluxlit.errors import ConfigError
from fluxlit.streamlit.command import streamlit_argv
from fluxlit.streamlit.shell import run


def test_streamlit_main_path_is_the_bundled_script() -> None:
    path = streamlit_main_path()
    assert path.is_file()
    assert path.name == "main.py"
    assert path.parent.name == "streamlit"


def test_argv_is_headless_loopback_with_an_explicit_port_and_mount() -> None:
    argv = streamlit_argv(8765, root_path="/apps/demo", extra=["--theme.base", "dark"])
    assert argv[:5] == [sys.executable, "-m", "streamlit", "run", str(streamlit_main_path())]
    pairs = dict(zip(argv[5::2], argv[6::2], strict=False))
    assert pairs["--server.port"] == "8765"
    assert pairs["--server.address"] == "127.0.0.1"
    assert pairs["--server.headless"] == "true"
    assert pairs["--server.fileWatcherType"] == "none"
    assert pairs["--server.baseUrlPath"] == "/apps/demo"
    assert argv[-2:] == ["--theme.base", "dark"]
    assert "--server.baseUrlPath" not in streamlit_argv(1, root_path="")


@pytest.mark.parametrize("flag", ["--server.port=1", "--server.address", "--server.baseUrlPath=/x"])
def test_argv_refuses_flags_fluxlit_owns(flag: str) -> None:
    with pytest.raises(ConfigError, match="may not set"):
        streamlit_argv(1, root_path="", extra=[flag])


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project directory as `fluxlit serve` would run from; its modules are unloaded afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLUXLIT_APP", raising=False)
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("entry_"):
            del sys.modules[name]


def run_entrypoint() -> Any:
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(streamlit_main_path()), default_timeout=10).run()


@pytest.mark.usefixtures("requires_streamlit_apptest")
def test_the_seed_recipe_renders_a_page_of_the_target(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "entry_app.py").write_text(
        "from fluxlit import FluxLit\n"
        "app = FluxLit(title='Entry')\n"
        "@app.page('/')\n"
        "def home(st, client):\n"
        "    st.title('Entry home')\n"
    )
    monkeypatch.setenv("FLUXLIT_APP", "entry_app:app")
    at = run_entrypoint()
    assert at.title[0].value == "Entry home"


@pytest.mark.usefixtures("requires_streamlit_apptest", "project")
def test_without_fluxlit_app_the_page_says_how_to_start() -> None:
    at = run_entrypoint()
    assert "FLUXLIT_APP is not set" in at.error[0].value


@pytest.mark.usefixtures("requires_streamlit_apptest", "project")
def test_a_target_that_fails_to_import_is_shown_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_APP", "entry_missing_module:app")
    at = run_entrypoint()
    assert not at.exception
    assert "FluxLit could not load the app" in at.error[0].value
    assert "entry_missing_module" in at.error[0].value


@pytest.mark.usefixtures("requires_streamlit_apptest")
def test_an_app_without_pages_points_at_its_api(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "entry_nopages.py").write_text("from fluxlit import FluxLit\napp = FluxLit(title='API only')\n")
    monkeypatch.setenv("FLUXLIT_APP", "entry_nopages:app")
    monkeypatch.setenv("FLUXLIT_API_PREFIX", "/v1")
    at = run_entrypoint()
    assert at.title[0].value == "API only"
    assert "`/v1`" in at.markdown[0].value


@pytest.mark.usefixtures("requires_streamlit_apptest")
def test_a_file_target_is_imported_once_not_on_every_run(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "entry_counted.py").write_text(
        "from fluxlit import FluxLit\n"
        "import builtins\n"
        "builtins.entry_counted_imports = getattr(builtins, 'entry_counted_imports', 0) + 1\n"
        "app = FluxLit(title='Counted')\n"
        "@app.page('/')\n"
        "def home(st, client):\n"
        "    st.write(f'imports={builtins.entry_counted_imports}')\n"
        "    st.button('rerun')\n"
    )
    import builtins

    monkeypatch.setattr(builtins, "entry_counted_imports", 0, raising=False)
    monkeypatch.setenv("FLUXLIT_APP", f"{project / 'entry_counted.py'}:app")
    at = run_entrypoint()
    at.button[0].click().run()
    at.button[0].click().run()
    assert at.markdown[0].value == "imports=1"


ENV_9 = {"STREAMLIT_SERVER_MAX_MESSAGE_SIZE": "9"}
SERVER_8 = "[server]\nmaxMessageSize = 8"
SERVER_TRUE = "[server]\nmaxMessageSize = true"


@pytest.mark.parametrize(
    ("extra", "env", "local", "home", "megabytes"),
    [
        ([], {}, None, None, 200),  # Streamlit's default
        (["--server.maxMessageSize=300"], {}, None, None, 300),
        (["--server.maxMessageSize", "301"], {}, None, None, 301),
        (["--server.maxMessageSize=1", "--server.maxMessageSize=302"], {}, None, None, 302),  # the last flag wins
        (["--server.maxMessageSize=303"], ENV_9, SERVER_8, None, 303),
        ([], {"STREAMLIT_SERVER_MAX_MESSAGE_SIZE": "304"}, "[server]\nmaxMessageSize = 8", None, 304),
        ([], {}, "[server]\nmaxMessageSize = 305", "[server]\nmaxMessageSize = 7", 305),
        ([], {}, None, "[server]\nmaxMessageSize = 306", 306),
        ([], {}, "[theme]\nbase = 'dark'", "[server]\nmaxMessageSize = 307", 307),  # no server key: the next place
        # values Streamlit itself would refuse are skipped, as is a file that is not TOML
        (["--server.maxMessageSize=lots"], {"STREAMLIT_SERVER_MAX_MESSAGE_SIZE": "0"}, SERVER_TRUE, None, 200),
        (["--server.maxMessageSize"], {}, "not = toml = at all", "server = 'flat'", 200),
    ],
)  # fmt: skip
def test_the_message_limit_is_streamlits_own_read_where_streamlit_reads_it(
    tmp_path: Path, extra: list[str], env: dict[str, str], local: str | None, home: str | None, megabytes: int
) -> None:
    from fluxlit.streamlit.command import streamlit_max_message_bytes

    for where, text in (("project", local), ("home", home)):
        (tmp_path / where / ".streamlit").mkdir(parents=True)
        if text is not None:
            (tmp_path / where / ".streamlit" / "config.toml").write_text(text + "\n")
    found = streamlit_max_message_bytes(extra, env, cwd=tmp_path / "project", home=tmp_path / "home")
    assert found == megabytes * 1_000_000


def test_the_message_limit_defaults_to_the_environment_and_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fluxlit.streamlit.command import streamlit_max_message_bytes

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("STREAMLIT_SERVER_MAX_MESSAGE_SIZE", "42")
    assert streamlit_max_message_bytes() == 42_000_000


# --- the entrypoint stops at its first error even where st.stop() returns (Streamlit's bare mode) ---


class RecordingStreamlit:
    """The real streamlit module, with the names the entrypoint used recorded in order."""

    def __init__(self) -> None:
        self.used: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.used.append(name)
        return getattr(streamlit, name)


def test_without_fluxlit_app_nothing_runs_after_the_error_even_where_stop_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLUXLIT_APP", raising=False)
    st = RecordingStreamlit()
    run(st)
    assert st.used == ["error", "stop"]


def test_a_target_that_cannot_load_stops_at_its_error_even_where_stop_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_APP", "no_such_module_for_shell_cov:app")
    st = RecordingStreamlit()
    run(st)
    assert st.used == ["error", "stop"]
