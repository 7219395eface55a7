"""`fluxlit doctor`'s upstream_keep_alive: the pool's idle expiry against the installed Streamlit's keep-alive."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

from fluxlit import doctor_upstream
from fluxlit.doctor_model import DoctorContext, Status
from fluxlit.doctor_upstream import check_upstream_keep_alive, keep_alive_from, streamlit_keep_alive_s

SERVER_SOURCE = Path(
    str(importlib.metadata.distribution("streamlit").locate_file(doctor_upstream.STREAMLIT_SERVER_FILE))
)


def context(tmp_path: Path, **env: str) -> DoctorContext:
    return DoctorContext(env=env, cwd=tmp_path)


def test_the_default_expiry_is_below_the_installed_streamlits_keep_alive(tmp_path: Path) -> None:
    found = check_upstream_keep_alive(context(tmp_path))
    assert found.status is Status.PASS, found
    assert "idle at most 4 s, below Streamlit's server keep-alive of 5 s" in found.detail


@pytest.mark.parametrize("idle", ["5", "30"])
def test_an_expiry_not_below_the_keep_alive_warns_with_the_value_and_the_fix(tmp_path: Path, idle: str) -> None:
    found = check_upstream_keep_alive(context(tmp_path, FLUXLIT_GATEWAY_UPSTREAM_POOL_IDLE_TIMEOUT_S=idle))
    assert found.status is Status.WARN, found
    assert f"FLUXLIT_GATEWAY_UPSTREAM_POOL_IDLE_TIMEOUT_S={idle} is not below" in found.detail
    assert found.fix == "lower it below 5 s (4 is the default)"


def test_invalid_settings_leave_it_unchecked(tmp_path: Path) -> None:
    found = check_upstream_keep_alive(context(tmp_path, FLUXLIT_GATEWAY_UPSTREAM_POOL_IDLE_TIMEOUT_S="0"))
    assert (found.status, found.detail) == (Status.WARN, "not checked: the settings are invalid")


def test_streamlit_1_67_keeps_uvicorns_five_second_default() -> None:
    import uvicorn

    assert streamlit_keep_alive_s() == (
        5.0,
        f"uvicorn {uvicorn.__version__}'s default, which Streamlit {importlib.metadata.version('streamlit')} keeps",
    )


@pytest.mark.parametrize(
    ("source", "why"),
    [
        (None, "Streamlit 1.50.0 does not serve with uvicorn"),  # Tornado before 1.57
        ("uvicorn.Config(app, timeout_keep_alive=30)", "Streamlit 1.50.0 sets uvicorn's timeout_keep_alive itself"),
    ],
)
def test_a_keep_alive_that_cannot_be_read_off_the_installed_files_is_unknown(source: str | None, why: str) -> None:
    assert keep_alive_from("1.50.0", source) == (None, why)


def test_without_uvicorn_the_keep_alive_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # what an import of a missing package meets
    assert keep_alive_from("1.67.0", SERVER_SOURCE.read_text()) == (
        None,
        "Streamlit 1.67.0 serves with uvicorn, which is not installed",
    )


def test_an_unknown_keep_alive_passes_and_says_what_still_guards_the_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(doctor_upstream, "STREAMLIT_SERVER_FILE", "streamlit/no/such/server.py")
    found = check_upstream_keep_alive(context(tmp_path))
    assert found.status is Status.PASS, found
    assert "checked for a close before each reuse" in found.detail
    assert "does not serve with uvicorn" in found.detail


def test_without_streamlit_the_keep_alive_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    assert streamlit_keep_alive_s() == (None, "Streamlit is not installed")
