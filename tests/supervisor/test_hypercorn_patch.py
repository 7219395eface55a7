"""The hypercorn patch: a connection its client closed is released at once; nothing else about connections changes."""

from __future__ import annotations

import ast
import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from fluxlit_supervisor import hypercorn_fixes
from fluxlit_supervisor.hypercorn_fixes import RELEASE_UPSTREAM_CODE, VERIFIED_VERSIONS, release_closed_connections
from fluxlit_supervisor.serve import ServeConfig, build_hypercorn_config
from hypercorn.asyncio import serve
from hypercorn.asyncio.tcp_server import TCPServer

KEEP_ALIVE = 3.0  # long enough that waiting for it is plainly distinguishable from closing at once


async def answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """200 'ok' after reading the body; '/slow' answers 0.3 s later."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/slow":
        await asyncio.sleep(0.3)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@asynccontextmanager
async def serving(keep_alive_timeout: float = KEEP_ALIVE) -> AsyncGenerator[int, None]:
    """hypercorn on a free loopback port, configured by build_hypercorn_config (which applies the patch)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = int(listener.getsockname()[1])
    config = build_hypercorn_config(
        ServeConfig(
            binds=(f"fd://{os.dup(listener.fileno())}",), hypercorn_options={"keep_alive_timeout": keep_alive_timeout}
        )
    )
    stop = asyncio.Event()
    task = asyncio.ensure_future(serve(answer, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    try:
        yield port
    finally:
        stop.set()
        await task
        listener.close()


async def request(port: int, path: str, *, half_close_first: bool = False) -> tuple[bytes, float]:
    """One GET; the client closes its sending side after the response (or right after the request with
    `half_close_first`). Returns everything received and how long the server took to close after the response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        if half_close_first:
            writer.write_eof()
        with anyio.fail_after(10):
            received = await reader.readuntil(b"ok")
            answered = time.monotonic()
            if not half_close_first:
                writer.write_eof()
            received += await reader.read()  # b"" once the server closes its side
        return received, time.monotonic() - answered
    finally:
        writer.close()


def test_the_patch_is_applied_once_and_marks_hypercorn() -> None:
    assert release_closed_connections() is True
    patched = TCPServer._read_data
    assert release_closed_connections() is True
    assert TCPServer._read_data is patched
    assert cast(Any, patched)._supervisor_releases_closed_connections is True


def test_the_installed_hypercorn_is_a_verified_version() -> None:
    """A new hypercorn release needs the patch re-read against its tcp_server.py (and dropped once fixed)."""
    from importlib.metadata import version

    assert version("hypercorn") in VERIFIED_VERSIONS


@pytest.mark.anyio
async def test_a_connection_the_client_closed_is_released_at_once() -> None:
    async with serving() as port:
        received, closed_after = await request(port, "/fast")
    assert received.startswith(b"HTTP/1.1 200 ")
    assert closed_after < 1.0  # unpatched, hypercorn 0.18 holds it for keep_alive_timeout (3 s here)


@pytest.mark.anyio
async def test_without_the_patch_hypercorn_holds_it_for_keep_alive_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bug the patch exists for; if this fails, hypercorn fixed it upstream and the patch can go."""
    release_closed_connections()
    unpatched = cast(Any, TCPServer._read_data).__wrapped__
    async with serving(keep_alive_timeout=1.0) as port:
        monkeypatch.setattr(TCPServer, "_read_data", unpatched)
        _, closed_after = await request(port, "/fast")
    assert 0.8 <= closed_after < 3.0


@pytest.mark.anyio
async def test_a_request_whose_client_half_closed_still_gets_its_response_then_the_connection_closes() -> None:
    async with serving() as port:
        received, closed_after = await request(port, "/slow", half_close_first=True)
    assert received.startswith(b"HTTP/1.1 200 ")
    assert received.endswith(b"ok")
    assert closed_after < 1.0


@pytest.mark.anyio
async def test_keep_alive_connections_still_serve_many_requests_and_idle_out_at_the_timeout() -> None:
    async with serving(keep_alive_timeout=0.5) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(3):
                writer.write(b"GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
                with anyio.fail_after(5):
                    assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200 ")
            idle_since = time.monotonic()
            with anyio.fail_after(5):
                assert await reader.read() == b""
            idle_for = time.monotonic() - idle_since
        finally:
            writer.close()
    assert 0.4 <= idle_for < 2.0


def test_the_patch_is_skipped_with_a_warning_when_hypercorn_has_no_read_data(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hypercorn_fixes, "_warned", [])
    monkeypatch.delattr(TCPServer, "_read_data")
    with caplog.at_level(logging.WARNING, logger="supervisor"):
        assert release_closed_connections() is False
    assert "TCPServer has no _read_data" in caplog.text
    assert RELEASE_UPSTREAM_CODE in caplog.text


def test_the_patch_is_skipped_with_a_warning_when_the_asyncio_server_is_missing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hypercorn_fixes, "_warned", [])
    monkeypatch.setitem(sys.modules, "hypercorn.asyncio.tcp_server", None)
    with caplog.at_level(logging.WARNING, logger="supervisor"):
        assert release_closed_connections() is False
    assert "patch skipped" in caplog.text


def test_an_unverified_hypercorn_is_left_unpatched_with_one_warning_naming_the_upstream_code(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    release_closed_connections()
    original = cast(Any, TCPServer._read_data).__wrapped__
    monkeypatch.setattr(TCPServer, "_read_data", original)
    monkeypatch.setattr(hypercorn_fixes, "_hypercorn_version", lambda: "99.0")
    monkeypatch.setattr(hypercorn_fixes, "_warned", [])
    with caplog.at_level(logging.WARNING, logger="supervisor"):
        assert release_closed_connections() is False
        assert release_closed_connections() is False
    assert TCPServer._read_data is original
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "hypercorn 99.0 is not a version the connection-release patch was checked against" in warning.message
    assert RELEASE_UPSTREAM_CODE in warning.message


def _hypercorn_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name == "hypercorn" or name.startswith("hypercorn.")}


def test_only_the_facade_imports_hypercorn_beyond_its_public_config() -> None:
    facade = Path(hypercorn_fixes.__file__).resolve()
    root = facade.parents[2]
    outside = {
        str(path.relative_to(root)): found
        for package in ("fluxlit", "supervisor", "proxy")
        for path in sorted((root / package).rglob("*.py"))
        if path.resolve() != facade and (found := _hypercorn_imports(path) - {"hypercorn.config"})
    }
    assert outside == {}
    assert "hypercorn.asyncio.run" in _hypercorn_imports(facade)  # the walk sees what the facade imports


def test_a_server_without_an_idle_task_is_left_alone() -> None:
    release_closed_connections()
    calls: list[str] = []

    class Bare:
        async def original(self) -> None:
            calls.append("read")

    wrapped = hypercorn_fixes._stopping_idle_task_after(Bare.original)
    bare = Bare()
    asyncio.run(wrapped(bare))
    assert calls == ["read"]
    assert not hasattr(bare, "idle_task")


def test_an_uninstalled_hypercorn_version_reads_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert hypercorn_fixes._hypercorn_version() == "unknown"
