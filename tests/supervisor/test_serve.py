"""The server shell: hypercorn config, binding up front, and cancellable in-flight requests."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import anyio
import pytest
from fluxlit_supervisor import ServeConfig
from fluxlit_supervisor.serve import (
    BindError,
    InflightRequests,
    all_sockets,
    bind_sockets,
    build_hypercorn_config,
    close_sockets,
    is_listening,
    parse_tcp_bind,
)
from hypercorn.config import Config, Sockets


def test_config_turns_access_log_off_and_errors_to_stdlib_logging() -> None:
    config = build_hypercorn_config(ServeConfig(binds=("127.0.0.1:9000", "unix:/tmp/x.sock")))
    assert config.bind == ["127.0.0.1:9000", "unix:/tmp/x.sock"]
    assert config.accesslog is None
    assert config.errorlog is logging.getLogger("hypercorn.error")


def test_hypercorn_options_are_applied_verbatim() -> None:
    options = {"include_server_header": False, "h11_max_incomplete_size": 8192, "websocket_ping_interval": 20.0}
    config = build_hypercorn_config(ServeConfig(hypercorn_options=options))
    assert (config.include_server_header, config.h11_max_incomplete_size, config.websocket_ping_interval) == (
        False,
        8192,
        20.0,
    )


@pytest.mark.parametrize("name", ["no_such_option", "_bind"])
def test_unknown_hypercorn_option_is_refused_by_name(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        build_hypercorn_config(ServeConfig(hypercorn_options={name: 1}))


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"binds": ()}, "binds is empty"),
        ({"binds": "127.0.0.1:8000"}, "must be a sequence"),
        ({"certfile": "cert.pem"}, "both certfile and keyfile"),
        ({"graceful_timeout": -1.0}, "graceful_timeout"),
    ],
)
def test_invalid_serve_config(kwargs: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        ServeConfig(**kwargs)


@pytest.mark.parametrize(
    ("bind", "address"),
    [
        ("127.0.0.1:8000", ("127.0.0.1", 8000)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:8501", ("::1", 8501)),
        ("[::]:0", ("::", 0)),
        ("localhost", ("localhost", 8000)),
    ],
)
def test_parse_tcp_bind(bind: str, address: tuple[str, int]) -> None:
    assert parse_tcp_bind(bind) == address


def test_a_failed_bind_names_it_and_closes_the_sockets_already_made(free_port: Any) -> None:
    good = f"127.0.0.1:{free_port()}"
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        taken = f"127.0.0.1:{blocker.getsockname()[1]}"
        config = build_hypercorn_config(ServeConfig(binds=(good, taken)))
        with pytest.raises(BindError, match=taken) as caught:
            bind_sockets(config)
    assert caught.value.bind == taken
    with socket.socket() as again:
        again.bind(("127.0.0.1", int(good.rsplit(":", 1)[1])))


def test_unix_bind_replaces_a_stale_socket_file_and_is_removed_on_close(tmp_path: Path) -> None:
    path = tmp_path / "server.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))
    config = build_hypercorn_config(ServeConfig(binds=(f"unix:{path}",)))
    sockets = bind_sockets(config)
    assert [s.family for s in all_sockets(sockets)] == [socket.AF_UNIX]
    assert not is_listening(sockets)
    all_sockets(sockets)[0].listen()
    assert is_listening(sockets)
    close_sockets(sockets, config.bind)
    assert not path.exists()


def test_unix_bind_into_a_missing_directory_is_a_bind_error(tmp_path: Path) -> None:
    config = build_hypercorn_config(ServeConfig(binds=(f"unix:{tmp_path}/missing/s.sock",)))
    with pytest.raises(BindError, match="missing"):
        bind_sockets(config)


@pytest.mark.anyio
async def test_inflight_requests_can_be_cancelled_and_lifespan_is_not_tracked() -> None:
    entered = anyio.Event()
    outcomes: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        entered.set()
        try:
            await anyio.sleep(30)
        except BaseException:
            outcomes.append(scope["type"])
            raise

    tracker = InflightRequests(app)
    request = asyncio.ensure_future(tracker({"type": "http"}, None, None))
    await entered.wait()
    assert tracker.count == 1
    assert tracker.cancel_all() == 1
    with pytest.raises(asyncio.CancelledError):
        await request
    assert outcomes == ["http"]
    assert tracker.count == 0


def test_quic_binds_are_refused_with_the_option_named() -> None:
    with pytest.raises(ValueError, match=r"hypercorn_options\['quic_bind'\] is not supported"):
        build_hypercorn_config(ServeConfig(hypercorn_options={"quic_bind": ["127.0.0.1:4433"]}))


def test_an_inherited_fd_that_is_not_a_stream_socket_is_a_bind_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        config = Config()
        config.bind = [f"fd://{udp.fileno()}"]
        with pytest.raises(BindError, match=rf"cannot bind fd://{udp.fileno()}: fd {udp.fileno()} is not a stream"):
            bind_sockets(config)
        assert udp.fileno() >= 0  # detached, not closed: the fd still belongs to its owner


def test_a_closed_socket_is_not_listening() -> None:
    sock = socket.socket()
    sock.close()
    assert is_listening(Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])) is False
