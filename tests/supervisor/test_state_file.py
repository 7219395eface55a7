"""The state file: atomic private writes, symlink safety, read precedence, default location."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from fluxlit_supervisor import UpstreamState, default_state_file_path, read_upstream, write_state_file
from fluxlit_supervisor.state import StateHub
from fluxlit_supervisor.state_file import _ensure_private_dir, parse_upstream_text, publish_state

LIVE = UpstreamState(state="ready", host="127.0.0.1", port=8501, pid=os.getpid(), generation=1)
ENV_URL = "http://127.0.0.1:9999"


def test_write_creates_a_private_json_file(tmp_path: Path) -> None:
    path = tmp_path / "upstream.json"
    write_state_file(path, LIVE)
    assert UpstreamState.from_json(path.read_text()) == LIVE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_replaces_atomically_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "upstream.json"
    path.write_text("old")
    with open(path) as reader_of_the_old_file:
        write_state_file(path, LIVE)
        write_state_file(path, UpstreamState(state="stopped"))
        # A reader that opened the old file still sees it whole: the new one was renamed over it.
        assert reader_of_the_old_file.read() == "old"
    assert UpstreamState.from_json(path.read_text()).state == "stopped"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upstream.json"]


def test_write_is_private_even_under_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        write_state_file(tmp_path / "upstream.json", LIVE)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "upstream.json").stat().st_mode) == 0o600


def test_a_symlink_planted_at_the_path_is_replaced_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("precious")
    link = tmp_path / "upstream.json"
    link.symlink_to(target)
    write_state_file(link, LIVE)
    assert target.read_text() == "precious"
    assert not link.is_symlink()
    assert UpstreamState.from_json(link.read_text()) == LIVE


@pytest.mark.parametrize(
    ("text", "url"),
    [
        (LIVE.to_json(), "http://127.0.0.1:8501"),
        ("http://127.0.0.1:8501\n", "http://127.0.0.1:8501"),
        ("http://127.0.0.1:8501/", "http://127.0.0.1:8501"),
        ("http://[::1]:8501", "http://[::1]:8501"),
        ("", None),
        ("   \n", None),
        ("not a url at all", None),
        ("http://127.0.0.1:8501/some/path/", "http://127.0.0.1:8501/some/path"),
        ("http://127.0.0.1:8501/a b", None),
        ('{"state": "stopped", "port": 8501}', None),
        ('{"state": "failed", "port": 8501}', None),
        ('{"state": "starting"}', None),
        ('{"state": "restarting", "host": "127.0.0.1", "port": 8501}', "http://127.0.0.1:8501"),
    ],
)
def test_parse_upstream_text(text: str, url: str | None) -> None:
    assert parse_upstream_text(text).url == url


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "upstream.json"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("content", "env_url", "expected"),
    [
        (LIVE.to_json(), ENV_URL, ("http://127.0.0.1:8501", "file")),
        ("http://127.0.0.1:8501", ENV_URL, ("http://127.0.0.1:8501", "file")),
        (None, ENV_URL, (ENV_URL, "env")),
        ("", ENV_URL, (ENV_URL, "env")),
        ("\x00\x01garbage", ENV_URL, (ENV_URL, "env")),
        ('{"state": "stopped", "port": 8501}', ENV_URL, (ENV_URL, "env")),
        (None, None, (None, "none")),
        ("garbage", None, (None, "none")),
    ],
)
def test_read_upstream_precedence(
    tmp_path: Path, content: str | None, env_url: str | None, expected: tuple[str | None, str]
) -> None:
    file_path = _write(tmp_path, content) if content is not None else str(tmp_path / "missing.json")
    assert read_upstream(file_path, env_url) == expected


def test_read_upstream_without_a_file_path_uses_the_environment() -> None:
    assert read_upstream(None, ENV_URL) == (ENV_URL, "env")
    assert read_upstream("", None) == (None, "none")


def test_read_upstream_strips_the_trailing_slash_of_the_environment_url() -> None:
    assert read_upstream(None, "http://127.0.0.1:9000/st/") == ("http://127.0.0.1:9000/st", "env")
    assert read_upstream(None, " ") == (None, "none")


def test_a_file_naming_a_dead_child_is_stale(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dead = UpstreamState(state="ready", host="127.0.0.1", port=8501, pid=2**22 + 12345)
    with caplog.at_level(logging.WARNING, logger="supervisor"):
        assert read_upstream(_write(tmp_path, dead.to_json()), ENV_URL) == (ENV_URL, "env")
    assert "stale" in caplog.text


def test_an_unreadable_file_falls_back_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="supervisor"):
        assert read_upstream(str(tmp_path), ENV_URL) == (ENV_URL, "env")
    assert "cannot be read" in caplog.text


def test_default_path_is_per_process_in_a_private_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path = default_state_file_path()
    assert path.name == f"upstream-{os.getpid()}.json"
    assert path.parent.parent == tmp_path
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert default_state_file_path() == path


def test_default_path_avoids_a_directory_someone_loosened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    shared = tmp_path / f"supervisor-{os.getuid()}"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    path = default_state_file_path()
    assert path.parent != shared
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_default_path_does_not_follow_a_planted_symlink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / f"supervisor-{os.getuid()}").symlink_to(elsewhere)
    assert default_state_file_path().parent.resolve() != elsewhere.resolve()


def test_a_state_file_that_cannot_replace_its_target_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "upstream.json"
    (target / "occupied").mkdir(parents=True)  # a non-empty directory where the file should go
    with pytest.raises(IsADirectoryError):
        write_state_file(target, UpstreamState(state="ready", port=8501))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upstream.json"]


def test_a_directory_that_cannot_be_created_is_not_taken_as_the_private_one(tmp_path: Path) -> None:
    assert _ensure_private_dir(tmp_path / "missing-parent" / "supervisor-0") is False


def test_an_oversized_state_file_is_ignored_for_the_environment_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    big = tmp_path / "upstream.json"
    big.write_text("http://127.0.0.1:8501\n" + " " * (64 * 1024))
    with caplog.at_level(logging.WARNING, logger="supervisor"):
        assert read_upstream(str(big), "http://127.0.0.1:9000") == ("http://127.0.0.1:9000", "env")
    assert f"is unusable: it is larger than {64 * 1024} bytes; falling back to the environment URL" in caplog.text


def test_a_state_file_naming_pid_0_counts_as_stale(tmp_path: Path) -> None:
    state = tmp_path / "upstream.json"
    state.write_text(UpstreamState(state="ready", port=8501, pid=0).to_json())
    assert read_upstream(str(state), None) == (None, "none")


def test_a_state_file_that_cannot_be_written_is_a_warning_and_the_hub_still_hears(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub = StateHub()
    state = UpstreamState("ready", host="127.0.0.1", port=8501, pid=1, generation=1)
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where a folder should be")
    with caplog.at_level(logging.WARNING, logger="supervisor"):
        publish_state(hub, blocked / "state.json", state)
    assert hub.current == state
    assert f"cannot write the state file {blocked / 'state.json'}" in caplog.text
