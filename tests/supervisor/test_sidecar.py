"""Sidecar: a child supervised without a server (the unified ASGI app's lifespan), against a real fake child."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from fluxlit_supervisor import ChildSpec, ExitCode, RestartPolicy, Sidecar, SidecarStartError, StateHub

from tests._live import pid_alive

pytestmark = pytest.mark.anyio


async def test_start_returns_once_the_child_is_ready_and_stop_ends_its_process_group(
    fake_child: Callable[..., ChildSpec], tmp_path: Path
) -> None:
    hub, state_file = StateHub(), tmp_path / "state.json"
    async with anyio.create_task_group() as group:
        sidecar = Sidecar(fake_child(), RestartPolicy(), hub, state_file=state_file)
        with anyio.fail_after(15):
            await sidecar.start(group)
        pid = hub.current.pid
        assert hub.current.state == "ready"
        assert pid is not None
        assert f'"pid": {pid}' in await anyio.Path(state_file).read_text()
        await sidecar.stop()
    assert not pid_alive(pid)
    assert hub.current.state == "stopped"
    assert not await anyio.Path(state_file).exists()
    assert sidecar.exit_code is None  # cancelled by the stop, not ended by the policy


async def test_a_child_that_dies_is_restarted_under_the_policy(fake_child: Callable[..., ChildSpec]) -> None:
    hub = StateHub()
    second_ready = anyio.Event()
    hub.subscribe(lambda state: second_ready.set() if state.state == "ready" and state.generation == 2 else None)
    async with anyio.create_task_group() as group:
        sidecar = Sidecar(fake_child(), RestartPolicy(backoff_initial=0.01, backoff_max=0.01), hub)
        with anyio.fail_after(15):
            await sidecar.start(group)
            first = hub.current.pid
            assert first is not None
            os.killpg(first, signal.SIGKILL)
            await second_ready.wait()
        assert hub.current.pid != first
        await sidecar.stop()


async def test_a_child_that_never_becomes_ready_raises_with_the_exit_code(
    fake_child: Callable[..., ChildSpec],
) -> None:
    hub = StateHub()
    async with anyio.create_task_group() as group:
        sidecar = Sidecar(fake_child("--exit-now", "--exit-code", "4"), RestartPolicy(), hub)
        with anyio.fail_after(15), pytest.raises(SidecarStartError, match="CHILD_START_FAILED") as info:
            await sidecar.start(group)
    assert info.value.code == ExitCode.CHILD_START_FAILED
    assert hub.current.state == "failed"


async def test_a_state_file_that_cannot_be_written_is_a_warning_not_a_failure(
    fake_child: Callable[..., ChildSpec], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub = StateHub()
    unwritable = tmp_path / "missing-dir" / "state.json"
    async with anyio.create_task_group() as group:
        sidecar = Sidecar(fake_child(), RestartPolicy(), hub, state_file=unwritable)
        with caplog.at_level(logging.WARNING, logger="supervisor"), anyio.fail_after(15):
            await sidecar.start(group)
        await sidecar.stop()
    assert "cannot write the state file" in caplog.text
