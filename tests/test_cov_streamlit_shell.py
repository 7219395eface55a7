"""The entrypoint stops at its first error even where st.stop() returns (Streamlit's bare mode)."""

from __future__ import annotations

from typing import Any

import pytest
import streamlit

from fluxlit.streamlit.shell import run


class RecordingStreamlit:
    """The real streamlit module, with the names the entrypoint used recorded in order."""

    def __init__(self) -> None:
        self.used: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.used.append(name)
        return getattr(streamlit, name)


def test_without_fluxlit_app_only_an_error_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLUXLIT_APP", raising=False)
    st = RecordingStreamlit()
    run(st)
    assert st.used == ["error", "stop"]


def test_a_target_that_cannot_load_only_shows_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_APP", "no_such_module_for_shell_cov:app")
    st = RecordingStreamlit()
    run(st)
    assert st.used == ["error", "stop"]
