"""The readiness probe: status-line parsing and one real round trip."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from fluxlit_supervisor.probe import is_ready_status, parse_status_code, probe_http, probe_request


@pytest.mark.parametrize(
    ("head", "code"),
    [
        (b"HTTP/1.1 200 OK\r\n", 200),
        (b"HTTP/1.0 204 No Content\r\nServer: x\r\n", 204),
        (b"HTTP/1.1 200\r\n", 200),
        (b"HTTP/1.1 503 Service Unavailable\r\n", 503),
        (b"HTTP/1.1 301 Moved\n", 301),
        (b"HTTP/2 200\r\n", None),
        (b"SSH-2.0-OpenSSH_9.6\r\n", None),
        (b"HTTP/1.1 20", None),
        (b"", None),
        (b"HTTP/1.1 2000 Nope\r\n", None),
    ],
)
def test_parse_status_code(head: bytes, code: int | None) -> None:
    assert parse_status_code(head) == code


@pytest.mark.parametrize(("code", "ready"), [(200, True), (299, True), (199, False), (300, False), (None, False)])
def test_only_2xx_is_ready(code: int | None, ready: bool) -> None:
    assert is_ready_status(code) is ready


def test_probe_request_brackets_ipv6_hosts() -> None:
    assert b"Host: [::1]:8501\r\n" in probe_request("::1", 8501, "/_stcore/health")
    assert probe_request("127.0.0.1", 80, "/h").startswith(b"GET /h HTTP/1.0\r\nHost: 127.0.0.1:80\r\n")


async def _serve_once(reply: bytes, task_status: Any) -> None:
    """Accept connections on a free port and answer each with `reply` (b"" = never answer)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            if reply:
                await stream.send(reply)
            else:
                await anyio.sleep_forever()

    async with listener:
        task_status.started(port)
        await listener.serve(handle)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reply", "ready"),
    [(b"HTTP/1.0 200 OK\r\n\r\nok", True), (b"HTTP/1.0 500 Oops\r\n\r\n", False), (b"", False)],
)
async def test_probe_against_a_server(reply: bytes, ready: bool) -> None:
    async with anyio.create_task_group() as group:
        port = await group.start(_serve_once, reply)
        assert await probe_http("127.0.0.1", port, "/", 0.3) is ready
        group.cancel_scope.cancel()


@pytest.mark.anyio
async def test_probe_of_a_closed_port_is_false(free_port: Any) -> None:
    assert await probe_http("127.0.0.1", free_port(), "/", 1.0) is False
