"""`fluxlit doctor`'s upstream_keep_alive: the pool's idle expiry against the installed Streamlit's keep-alive."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

from fluxlit.doctor import upstream_checks as doctor_upstream
from fluxlit.doctor.model import DoctorContext, Status
from fluxlit.doctor.upstream_checks import check_upstream_keep_alive, keep_alive_from, streamlit_keep_alive_s

SERVER_SOURCE = Path(
    str(importlib.metadata.distribution("streamlit").locate_file(doctor_upstream.STREAMLIT_SERVER_FILE))
)


def context(tmp_path: Path, **env: str) -> DoctorContext:
    return DoctorContext(env=env, cwd=tmp_path)


UVICORN_DEFAULT = (5.0, "uvicorn's default, which Streamlit keeps")
# What Streamlit serves with depends on its version: the floors run (`make audit-floors`) has 1.54, with Tornado.
SERVES_WITH_UVICORN = streamlit_keep_alive_s()[0] is not None


class FakeStreamlit:
    """An installed Streamlit distribution made of the given files (path below site-packages -> text)."""

    def __init__(self, root: Path, version: str, files: dict[str, str]) -> None:
        self.root, self.version = root, version
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)

    def locate_file(self, path: str) -> Path:
        return self.root / path


def test_the_default_expiry_is_below_a_five_second_keep_alive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_upstream, "streamlit_keep_alive_s", lambda: UVICORN_DEFAULT)
    found = check_upstream_keep_alive(context(tmp_path))
    assert found.status is Status.PASS, found
    assert "idle at most 4 s, below Streamlit's server keep-alive of 5 s" in found.detail


@pytest.mark.parametrize("idle", ["5", "30"])
def test_an_expiry_not_below_the_keep_alive_warns_with_the_value_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, idle: str
) -> None:
    monkeypatch.setattr(doctor_upstream, "streamlit_keep_alive_s", lambda: UVICORN_DEFAULT)
    found = check_upstream_keep_alive(context(tmp_path, FLUXLIT_GATEWAY_UPSTREAM_POOL_IDLE_TIMEOUT_S=idle))
    assert found.status is Status.WARN, found
    assert f"FLUXLIT_GATEWAY_UPSTREAM_POOL_IDLE_TIMEOUT_S={idle} is not below" in found.detail
    assert found.fix == "lower it below 5 s (4 is the default)"


def test_invalid_settings_leave_it_unchecked(tmp_path: Path) -> None:
    found = check_upstream_keep_alive(context(tmp_path, FLUXLIT_GATEWAY_UPSTREAM_POOL_IDLE_TIMEOUT_S="0"))
    assert (found.status, found.detail) == (Status.WARN, "not checked: the settings are invalid")


@pytest.mark.skipif(not SERVES_WITH_UVICORN, reason="the installed Streamlit serves with Tornado (make audit-floors)")
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


def test_a_uvicorn_server_that_sets_no_keep_alive_keeps_uvicorns_default() -> None:
    import uvicorn

    assert keep_alive_from("1.70.0", "uvicorn.Config(app, host=host, port=port)") == (
        5.0,
        f"uvicorn {uvicorn.__version__}'s default, which Streamlit 1.70.0 keeps",
    )


def test_a_streamlit_that_serves_with_tornado_unless_asked_has_an_unknown_keep_alive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeStreamlit(
        tmp_path,
        "1.54.0",
        {
            doctor_upstream.STREAMLIT_SERVER_FILE: "uvicorn.Config(app)",
            doctor_upstream.STREAMLIT_SERVER_SWITCH: 'config.get_option("server.useStarlette")',
        },
    )
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: fake)
    assert streamlit_keep_alive_s() == (None, "Streamlit 1.54.0 does not serve with uvicorn")


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
