"""Fixtures for supervisor tests: anyio on asyncio, a fake child, free ports, and a hub that remembers pids."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from fluxlit_supervisor import ChildSpec, StateHub, UpstreamState

FAKE_CHILD = Path(__file__).with_name("fake_child.py")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep runs hermetic when the test runner itself lives under systemd."""
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _fake_child_spec(*args: str, **overrides: Any) -> ChildSpec:
    """A ChildSpec running fake_child.py with `args`, with timings short enough for tests."""
    settings: dict[str, Any] = {
        "start_timeout": 10.0,
        "stop_grace": 2.0,
        "health_interval": 1.0,
        "name": "fake",
    }
    settings.update(overrides)

    def argv(port: int) -> Sequence[str]:
        return [sys.executable, str(FAKE_CHILD), "--port", str(port), *args]

    return ChildSpec(argv=argv, **settings)


class RecordingHub(StateHub):
    """A StateHub that keeps every published state, for assertions and for killing leftovers."""

    def __init__(self) -> None:
        super().__init__()
        self.history: list[UpstreamState] = []
        self.subscribe(self.history.append)

    @property
    def pids(self) -> set[int]:
        return {s.pid for s in self.history if s.pid is not None}

    def names(self) -> list[str]:
        """The state names in order, with consecutive repeats collapsed."""
        names: list[str] = []
        for state in self.history:
            if not names or names[-1] != state.state:
                names.append(state.state)
        return names

    async def wait_for(self, predicate: Callable[[UpstreamState], bool], within: float = 10.0) -> UpstreamState:
        """The first published state (or the current one) matching `predicate`; fails after `within` s."""
        if predicate(self.current):
            return self.current
        matched: list[UpstreamState] = []
        arrived = anyio.Event()

        def check(state: UpstreamState) -> None:
            if not matched and predicate(state):
                matched.append(state)
                arrived.set()

        self.subscribe(check)
        try:
            with anyio.fail_after(within):
                await arrived.wait()
        finally:
            self.unsubscribe(check)
        return matched[0]


@pytest.fixture
def hub() -> Iterator[RecordingHub]:
    recording = RecordingHub()
    try:
        yield recording
    finally:
        for pid in recording.pids:
            _kill_group(pid)


def _kill_group(pid: int) -> None:
    """SIGKILL a child's process group by id, ignoring ones that are already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _pid_gone(pid: int) -> bool:
    """True when `pid` no longer exists or is only a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A function returning a currently free loopback TCP port."""
    return _free_port


@pytest.fixture
def fake_child() -> Callable[..., ChildSpec]:
    """`fake_child(*fake_child_args, **ChildSpec_overrides)` builds a spec for fake_child.py."""
    return _fake_child_spec


async def _eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    with anyio.fail_after(within):
        # Process exit and file changes have no event to wait on: poll.
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.01)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    """`await eventually(condition, within=5.0)`: poll until true, fail after `within` seconds."""
    return _eventually


@pytest.fixture
def pid_gone() -> Callable[[int], bool]:
    """A function telling whether a pid has exited (zombies count as gone)."""
    return _pid_gone


@pytest.fixture
def fake_child_path() -> Path:
    """The fake child script, for tests that build their own command lines."""
    return FAKE_CHILD
