"""doctor's app checks for an API-only target, and where it reads Streamlit's upload limit from."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluxlit.doctor.app_checks import STREAMLIT_DEFAULT_UPLOAD_MB, check_pages, check_target, streamlit_upload_limit_mb
from fluxlit.doctor.model import DoctorContext, Status

PREFIX = "doctor_app_case_"


@pytest.fixture(autouse=True)
def forget_test_apps(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name in [n for n in sys.modules if n.startswith(PREFIX)]:
        del sys.modules[name]


def app_context(tmp_path: Path, name: str, source: str, **env: str) -> DoctorContext:
    (tmp_path / f"{PREFIX}{name}.py").write_text(source)
    return DoctorContext(target_arg=f"./{PREFIX}{name}.py:app", cwd=tmp_path, env=env)


def with_run_args(*args: str) -> str:
    return f"from fluxlit import FluxLit\napp = FluxLit(streamlit_run_args={list(args)!r})\n"


def test_an_api_only_target_passes_with_no_pages(tmp_path: Path) -> None:
    ctx = app_context(tmp_path, "plain", "from fastapi import FastAPI\napp = FastAPI()\n")
    target, pages = check_target(ctx), check_pages(ctx)
    assert (target.status, pages.status) == (Status.PASS, Status.PASS)
    assert target.detail.endswith("is a plain ASGI app, served under the API prefix with no pages")
    assert pages.detail == "no pages (plain ASGI app)"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--server.maxUploadSize", "50"), (50, "streamlit_run_args")),
        (("--server.headless true --server.maxUploadSize=64",), (64, "streamlit_run_args")),
        (("--server.maxUploadSize",), (STREAMLIT_DEFAULT_UPLOAD_MB, "Streamlit's default")),
        (
            ("--server.maxUploadSize=lots",),
            (STREAMLIT_DEFAULT_UPLOAD_MB, "unreadable value 'lots' in streamlit_run_args; Streamlit's default assumed"),
        ),
    ],
)
def test_the_upload_limit_comes_from_the_apps_streamlit_run_args(
    tmp_path: Path, args: tuple[str, ...], expected: tuple[int, str]
) -> None:
    assert streamlit_upload_limit_mb(app_context(tmp_path, "args", with_run_args(*args))) == expected


def test_the_upload_limit_comes_from_streamlits_environment_variable(tmp_path: Path) -> None:
    ctx = app_context(tmp_path, "env", with_run_args(), STREAMLIT_SERVER_MAX_UPLOAD_SIZE=" 75 ")
    assert streamlit_upload_limit_mb(ctx) == (75, "STREAMLIT_SERVER_MAX_UPLOAD_SIZE")
