"""Log fields stay short: every string field of every line is capped, whichever path wrote the line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from fluxlit import FluxLit
from fluxlit.gateway.router import build_gateway
from fluxlit.observability import logs
from fluxlit.observability.access import AccessObserver
from fluxlit.observability.logs import (
    MAX_FIELD_CHARS,
    cap_fields,
    cap_text,
    configure_logging,
    fast_info_line,
    get_logger,
)
from fluxlit.testing import TestClient
from tests._logs import JsonLog


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (MAX_FIELD_CHARS, "a" * MAX_FIELD_CHARS),
        (MAX_FIELD_CHARS + 1, "a" * MAX_FIELD_CHARS + "...[1 more chars]"),
        (100 * 1024, "a" * MAX_FIELD_CHARS + f"...[{100 * 1024 - MAX_FIELD_CHARS} more chars]"),
    ],
)
def test_cap_text_keeps_the_start_and_says_how_much_was_cut(length: int, expected: str) -> None:
    assert cap_text("a" * length) == expected


def test_cap_fields_cuts_only_long_strings() -> None:
    line = {"path": "p" * 5000, "status": 200, "tags": ["t" * 5000], "query": "q=1"}
    cap_fields(line)
    assert len(line["path"]) < MAX_FIELD_CHARS + 30
    assert line["status"] == 200
    assert line["tags"] == ["t" * 5000]  # only top-level strings: structures are ours, not the client's
    assert line["query"] == "q=1"


def test_the_access_line_of_a_long_url_is_capped(log_stream: JsonLog) -> None:
    """Issue 15: a 100 KiB URL was logged whole, as a 102 KB line. Now 414 stops it at 8 KiB, and the line
    of an 8 KiB one keeps 2 KiB of each field."""
    app = FluxLit()

    @app.api.get("/{rest:path}")
    def anything(rest: str) -> dict[str, int]:
        return {"length": len(rest)}

    gateway = build_gateway(app, observer=AccessObserver(None))
    with TestClient(gateway) as client:
        assert client.get("/api/" + "a" * 4000, params={"q": "b" * 3000}).status_code == 200
    (line,) = [line for line in log_stream.lines() if line["event"] == "request"]
    assert line["path"] == "/api/" + "a" * (MAX_FIELD_CHARS - 5) + f"...[{4005 - MAX_FIELD_CHARS} more chars]"
    assert line["query"].endswith(f"...[{len('q=') + 3000 - MAX_FIELD_CHARS} more chars]")
    assert max(len(json.dumps(value)) for value in line.values()) < MAX_FIELD_CHARS + 40


def test_structlog_and_stdlib_lines_are_capped_but_tracebacks_are_whole(log_stream: JsonLog) -> None:
    get_logger("fluxlit.test").info("e" * 5000, detail="d" * 5000)
    try:
        raise ValueError("x" * 5000)
    except ValueError:
        logging.getLogger("user.code").exception("m" * 5000)
    ours, theirs = log_stream.lines()
    assert len(ours["event"]) < MAX_FIELD_CHARS + 30
    assert len(ours["detail"]) < MAX_FIELD_CHARS + 30
    assert len(theirs["event"]) < MAX_FIELD_CHARS + 30
    assert "x" * 5000 in theirs["exception"]


def test_console_lines_are_capped_too() -> None:
    stream = io.StringIO()
    configure_logging("info", "console", stream=stream)
    try:
        get_logger("fluxlit.test").info("start", detail="d" * 5000)
    finally:
        logging.getLogger().handlers.clear()
    assert "d" * (MAX_FIELD_CHARS + 1) not in stream.getvalue()
    assert "more chars]" in stream.getvalue()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put every piece of it back afterwards."""
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
