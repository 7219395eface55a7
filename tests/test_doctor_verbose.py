"""`fluxlit doctor --verbose`: the configuration the checks judged, under the reference's keys, with what failed."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fluxlit.doctor.model import DoctorContext
from fluxlit.doctor.verbose import _handler_name, render_verbose_text, verbose_snapshot

SMOKE_APP = Path(__file__).resolve().parent.parent / "examples" / "smoke_app" / "app.py"
REFERENCE_KEYS = {
    "resolved_target",
    "pages",
    "settings_redacted",
    "effective",
    "openapi",
    "extras",
    "streamlit_sidecar",
    "gateway_proxy",
    "project_defaults",
}


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("verbose_case_")]:
        del sys.modules[name]


def snapshot_of(tmp_path: Path, target: str, **env: str) -> dict[str, Any]:
    return verbose_snapshot(DoctorContext(target_arg=target, cwd=tmp_path, env=env))


def test_a_healthy_app_gets_every_section_of_the_reference(tmp_path: Path) -> None:
    snap = snapshot_of(tmp_path, f"{SMOKE_APP}:app", FLUXLIT_GATEWAY_PORT="8123")
    assert set(snap) >= REFERENCE_KEYS
    assert "target_error" not in snap
    assert "settings_error" not in snap
    assert snap["effective"]["gateway_bind"] == "127.0.0.1:8123"
    assert snap["sources"] == {"target": "cli", "port": "env"}
    pages = snap["pages"]
    assert pages
    assert {"path", "title", "handler"} == set(pages[0])
    assert pages[0]["handler"].count(".") >= 1
    assert snap["openapi"]["openapi_url"] == "/openapi.json"
    assert snap["streamlit_sidecar"]["fluxlit_managed_runtime"] is True


def test_an_external_streamlit_shows_as_not_managed(tmp_path: Path) -> None:
    snap = snapshot_of(tmp_path, f"{SMOKE_APP}:app", FLUXLIT_STREAMLIT_UPSTREAM="http://10.0.0.5:8501")
    sidecar = snap["streamlit_sidecar"]
    assert sidecar == {"fluxlit_managed_runtime": False, "upstream_file_set": False, "upstream_url_set": True}


def test_a_target_that_does_not_load_is_named_and_the_rest_still_shown(tmp_path: Path) -> None:
    snap = snapshot_of(tmp_path, "verbose_case_missing:app")
    assert "no module named 'verbose_case_missing'" in str(snap["target_error"])
    assert (snap["pages"], snap["openapi"]) == ([], {})
    assert "settings_redacted" in snap


def test_a_plain_asgi_app_has_no_pages(tmp_path: Path) -> None:
    (tmp_path / "verbose_case_plain.py").write_text("from fastapi import FastAPI\n\napp = FastAPI()\n")
    snap = snapshot_of(tmp_path, "verbose_case_plain.py:app")
    assert (snap["pages"], snap["openapi"]) == ([], {})


def test_invalid_settings_are_named_instead_of_shown(tmp_path: Path) -> None:
    snap = snapshot_of(tmp_path, f"{SMOKE_APP}:app", FLUXLIT_API_MOUNT_PATH="api/")
    assert "FLUXLIT_API_MOUNT_PATH='api/'" in str(snap["settings_error"])
    assert "settings_redacted" not in snap


def test_the_project_file_and_its_keys_are_shown(tmp_path: Path) -> None:
    (tmp_path / "fluxlit.toml").write_text("port = 9001\n")
    snap = snapshot_of(tmp_path, f"{SMOKE_APP}:app")
    assert snap["project_defaults"] == {"file": str(tmp_path / "fluxlit.toml"), "keys": {"port": 9001}}


def test_an_unreadable_project_file_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "fluxlit.toml").write_text("port = \n")
    snap = snapshot_of(tmp_path, f"{SMOKE_APP}:app")
    defaults = snap["project_defaults"]
    assert defaults["file"] is None
    assert "is not valid TOML" in defaults["keys"]["error"]


def test_text_lines_are_section_key_and_json_values() -> None:
    text = render_verbose_text({"resolved_target": "app:app", "effective": {"trust_proxy": False}, "pages": []})
    assert text.splitlines() == [
        "--- Verbose (effective configuration; secrets redacted) ---",
        'resolved_target: "app:app"',
        "effective.trust_proxy: false",
        "pages: []",
    ]


def test_a_page_handler_that_is_not_a_function_is_still_named() -> None:
    assert _handler_name(functools.partial(os.getcwd)) == "functools.partial"
    assert _handler_name(os.getcwd) == "posix.getcwd"
