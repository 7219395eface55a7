"""Serve-time pieces in-process: the API address pages use, an API-only plan, refusals, the fast log path."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi import FastAPI

from fluxlit import FluxLit
from fluxlit.config.parsers import parse_str
from fluxlit.config.settings import Settings, _setting
from fluxlit.errors import TargetError
from fluxlit.gateway.router import build_gateway
from fluxlit.observability.logs import configure_logging, fast_info_line
from fluxlit.runtime.addresses import internal_api_base
from fluxlit.runtime.serve_plan import build_serve_plan
from fluxlit.targets import LoadedTarget, load_target
from fluxlit.testing import TestClient


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("0.0.0.0", "http://127.0.0.1:8123/api"),
        ("::", "http://[::1]:8123/api"),
        ("10.0.0.2", "http://10.0.0.2:8123/api"),
    ],
)
def test_pages_reach_an_any_address_bind_over_loopback(host: str, base: str) -> None:
    assert internal_api_base(Settings(host=host, port=8123)) == base


def test_an_api_only_target_is_ready_without_streamlit(tmp_path: Path) -> None:
    api = FastAPI()
    settings = Settings(port=8123, state_file=str(tmp_path / "state.json"))
    plan = build_serve_plan(settings, LoadedTarget("api_only:api", None, api))
    assert plan.proxy is None
    with TestClient(plan.gateway) as client:
        response = client.get("/api/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready", "streamlit": "not_configured"})


def test_a_websocket_to_a_dot_segment_path_is_closed_1008() -> None:
    gateway = build_gateway(FluxLit())
    scope: dict[str, Any] = {
        "type": "websocket",
        "path": "/pages/../_stcore/stream",
        "raw_path": b"/pages/../_stcore/stream",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.com")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    anyio.run(gateway, scope, receive, send)
    assert [(m["type"], m["code"], m["reason"]) for m in sent] == [
        ("websocket.close", 1008, "Paths with '.' or '..' segments are refused.")
    ]


def test_build_gateway_refuses_what_is_not_an_app() -> None:
    with pytest.raises(TypeError, match="build_gateway needs a FluxLit or an ASGI app, got int"):
        build_gateway(42)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put every piece of it back afterwards."""
    import structlog

    from fluxlit.observability import logs

    root = logging.getLogger()
    chatty = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    access_disabled = logging.getLogger("hypercorn.access").disabled
    saved = (root.handlers[:], root.level, structlog.get_config(), logs._fast_lines)
    yield
    root.handlers[:], level, config, logs._fast_lines = saved
    root.setLevel(level)
    structlog.configure(**config)
    for name, chatty_level in chatty.items():
        logging.getLogger(name).setLevel(chatty_level)
    logging.getLogger("hypercorn.access").disabled = access_disabled


@pytest.mark.usefixtures("restore_logging")
def test_the_fast_json_line_honours_the_log_level() -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream=stream)
    assert fast_info_line("request", "access", {"status": 200}) is True
    assert stream.getvalue() == ""


@pytest.mark.usefixtures("restore_logging")
def test_the_console_format_has_no_fast_json_path() -> None:
    configure_logging("info", "console", stream=io.StringIO())
    assert fast_info_line("request", "access", {"status": 200}) is False


def test_a_mutable_setting_default_is_refused() -> None:
    with pytest.raises(TypeError, match="settings defaults must be immutable"):
        _setting([], "FLUXLIT_EXAMPLE", None, "an example", parse_str)


def test_a_file_target_python_cannot_import_is_a_target_error(tmp_path: Path) -> None:
    (tmp_path / "app.txt").write_text("app = None\n")
    with pytest.raises(TargetError, match=r"app\.txt' cannot be imported as a Python module"):
        load_target("./app.txt:app", cwd=tmp_path)
