"""sd_notify delivery over a datagram socket, and the watchdog interval rules."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fluxlit_supervisor import sd_notify
from fluxlit_supervisor.notify import notify_socket_address, status_text, watchdog_interval


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


def test_messages_arrive_in_order(notify_socket: socket.socket) -> None:
    sent = ["STATUS=starting", "READY=1", "WATCHDOG=1", "STOPPING=1"]
    assert all(sd_notify(message) for message in sent)
    assert [notify_socket.recv(4096).decode() for _ in sent] == sent


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"supervisor-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sd_notify("READY=1")
        assert sock.recv(4096) == b"READY=1"


def test_unset_socket_is_a_quiet_no(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False


def test_unreachable_socket_is_a_quiet_no(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))
    assert sd_notify("READY=1") is False


@pytest.mark.parametrize(("value", "address"), [("/run/notify", "/run/notify"), ("@abc", "\0abc")])
def test_notify_socket_address(value: str, address: str) -> None:
    assert notify_socket_address(value) == address


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({"WATCHDOG_USEC": "20000000"}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "4242"}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "x"}, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout_and_only_for_us(env: dict[str, str], interval: float | None) -> None:
    assert watchdog_interval(env, 4242) == interval


def test_status_text() -> None:
    assert status_text("ready", 2, 10, 8501, "") == "child ready, generation 2, pid 10, port 8501"
    assert status_text("failed", 1, None, None, "exit code 3") == "child failed, generation 1: exit code 3"
