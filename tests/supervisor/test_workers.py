"""Worker processes sharing the supervisor's sockets: spawn with the fds, restart on death, stop and reap."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from fluxlit_supervisor import RestartPolicy, StateHub, run_supervised
from fluxlit_supervisor.reaper import ManagedPids
from fluxlit_supervisor.workers import (
    FDS_ENV,
    INDEX_ENV,
    WORKER_RESTARTS,
    InheritedSockets,
    WorkerPool,
    WorkerSpec,
    inherited_sockets,
    worker_spawn_options,
)
from hypercorn.config import Sockets

from tests._lifespan import answer_lifespan
from tests.supervisor.test_run_supervised import run_spec

pytestmark = pytest.mark.anyio

WORKER_CHILD = Path(__file__).with_name("worker_child.py")
FAST_RESTARTS = RestartPolicy(backoff_initial=0.05, backoff_max=0.2, jitter=0.0)


def spec(out: Path, *args: str, **overrides: Any) -> WorkerSpec:
    settings: dict[str, Any] = {"count": 2, "stop_grace": 2.0, "restart": FAST_RESTARTS}
    settings.update(overrides)
    return WorkerSpec(argv=[sys.executable, str(WORKER_CHILD), str(out), *args], **settings)


def listening_sockets() -> Sockets:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])


@contextlib.asynccontextmanager
async def running_pool(worker_spec: WorkerSpec, managed: ManagedPids | None = None) -> AsyncGenerator[WorkerPool, None]:
    """A pool running in a task group over one listening socket, which closes after the block (that stops the pool)."""
    sockets = listening_sockets()
    pool = WorkerPool(worker_spec, sockets, ManagedPids() if managed is None else managed)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(pool.run)
            yield pool
    finally:
        sockets.insecure_sockets[0].close()


def crashing(restart: RestartPolicy) -> WorkerSpec:
    """One worker that exits with code 3 as soon as it starts."""
    return WorkerSpec(argv=[sys.executable, "-c", "raise SystemExit(3)"], count=1, restart=restart)


async def until_started(pool: WorkerPool, times: int) -> None:
    with anyio.fail_after(20):
        while pool.starts < times:  # noqa: ASYNC110
            await anyio.sleep(0.02)


def records(out: Path) -> dict[int, dict[str, Any]]:
    return {int(p.stem): json.loads(p.read_text()) for p in out.glob("*.json")}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_workers_start_with_the_listening_fds_and_their_index(
    tmp_path: Path, eventually: Callable[..., Awaitable[None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/not-for-workers")
    managed = ManagedPids()
    async with running_pool(spec(tmp_path), managed) as pool:
        await eventually(lambda: len(records(tmp_path)) == 2)
        assert set(managed.pids) == set(pool.pids)
        await pool.stop()
    seen = records(tmp_path)
    assert sorted(r["index"] for r in seen.values()) == ["1", "2"]
    assert all(r["notify"] is None for r in seen.values())
    assert len({tuple(r["ports"]) for r in seen.values()}) == 1  # the one socket, seen by both
    assert not any(alive(pid) for pid in seen)
    assert managed.pids == set()


async def test_a_worker_that_dies_is_restarted(tmp_path: Path, eventually: Callable[..., Awaitable[None]]) -> None:
    async with running_pool(spec(tmp_path, count=1)) as pool:
        await eventually(lambda: len(records(tmp_path)) == 1)
        first = next(iter(records(tmp_path)))
        os.kill(first, signal.SIGKILL)
        await eventually(lambda: len(records(tmp_path)) == 2)
        assert pool.starts == 2
        await pool.stop()
    assert not any(alive(pid) for pid in records(tmp_path))


async def test_backoff_grows_while_a_worker_keeps_dying(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    restart = RestartPolicy(backoff_initial=0.05, backoff_max=0.1, jitter=0.0)
    async with running_pool(crashing(restart)) as pool:
        await until_started(pool, 3)
        await pool.stop()
    delays = [r.restart_delay for r in caplog.records if hasattr(r, "restart_delay")]
    assert delays[:2] == [0.05, 0.1]
    assert "exit code 3" in caplog.text


async def test_a_worker_that_ran_long_enough_restarts_after_the_initial_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    restart = RestartPolicy(backoff_initial=0.05, backoff_max=0.1, jitter=0.0, min_uptime=0.0)
    async with running_pool(crashing(restart)) as pool:
        await until_started(pool, 3)
        await pool.stop()
    delays = [r.restart_delay for r in caplog.records if hasattr(r, "restart_delay")]
    assert delays[:2] == [0.05, 0.05]


async def test_a_worker_is_restarted_past_the_policy_crash_budget(tmp_path: Path) -> None:
    restart = RestartPolicy(backoff_initial=0.01, backoff_max=0.01, jitter=0.0, max_failures=1)
    async with running_pool(crashing(restart)) as pool:
        await until_started(pool, 3)
        await pool.stop()


async def test_workers_exiting_after_begin_stop_are_not_restarted(
    tmp_path: Path, eventually: Callable[..., Awaitable[None]]
) -> None:
    async with running_pool(spec(tmp_path)) as pool:
        await eventually(lambda: len(records(tmp_path)) == 2)
        pool.begin_stop()
        await eventually(lambda: not pool.pids)
        await anyio.sleep(0.2)
        assert pool.starts == 2
        await pool.stop()


async def test_a_worker_ignoring_sigterm_is_killed_after_stop_grace(
    tmp_path: Path, eventually: Callable[..., Awaitable[None]]
) -> None:
    async with running_pool(spec(tmp_path, "--ignore-sigterm", count=1, stop_grace=0.3)) as pool:
        await eventually(lambda: len(records(tmp_path)) == 1)
        started = time.monotonic()
        await pool.stop()
        assert 0.3 <= time.monotonic() - started < 5
    assert not any(alive(pid) for pid in records(tmp_path))


async def test_a_forced_stop_kills_at_once(tmp_path: Path, eventually: Callable[..., Awaitable[None]]) -> None:
    async with running_pool(spec(tmp_path, "--ignore-sigterm", count=1, stop_grace=30.0)) as pool:
        await eventually(lambda: len(records(tmp_path)) == 1)
        started = time.monotonic()
        await pool.stop(force=True)
        assert time.monotonic() - started < 5
    assert not any(alive(pid) for pid in records(tmp_path))


async def test_stop_before_run_returns_at_once() -> None:
    sockets = listening_sockets()
    pool = WorkerPool(WorkerSpec(argv=["true"], count=1), sockets, ManagedPids())
    try:
        with anyio.fail_after(2):
            await pool.stop()
    finally:
        sockets.insecure_sockets[0].close()
    assert pool.starts == 0


async def test_run_supervised_stops_its_workers_and_frees_the_port(
    tmp_path: Path, free_port: Callable[[], int], eventually: Callable[..., Awaitable[None]]
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)

    port = free_port()
    hub = StateHub()
    result: list[int] = []

    async def serve() -> None:
        result.append(
            await run_supervised(
                run_spec(
                    app, port, None, hub, graceful_timeout=0.5, policy=RestartPolicy(), workers=spec(tmp_path, count=2)
                )
            )
        )

    async with anyio.create_task_group() as group:
        group.start_soon(serve)
        await eventually(lambda: len(records(tmp_path)) == 2, within=10)
        assert {r["ports"][0] for r in records(tmp_path).values()} == {port}
        hub.request_stop()
    assert result == [0]
    assert not any(alive(pid) for pid in records(tmp_path))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def test_inherited_sockets_reads_the_fds_as_hypercorn_binds() -> None:
    env = {FDS_ENV: json.dumps({"secure": [5], "insecure": [7, 8]}), INDEX_ENV: "3"}
    assert inherited_sockets(env) == InheritedSockets(3, ("fd://5",), ("fd://7", "fd://8"))


@pytest.mark.parametrize("env", [{}, {FDS_ENV: "[", INDEX_ENV: "1"}, {FDS_ENV: '{"secure": []}', INDEX_ENV: "1"}])
def test_inherited_sockets_outside_a_worker_names_the_variables(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=FDS_ENV):
        inherited_sockets(env)


def test_a_worker_is_passed_the_fds_named_in_its_environment_without_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "1000")
    sockets = listening_sockets()
    try:
        options = worker_spawn_options(WorkerSpec(argv=["x"], count=1, env={"A": "b"}), sockets, 2)
        fd = sockets.insecure_sockets[0].fileno()
    finally:
        sockets.insecure_sockets[0].close()
    env = options.environment()
    assert options.pass_fds == (fd,)
    assert not options.capture_output  # a worker's output goes where the supervisor's goes
    assert json.loads(env[FDS_ENV]) == {"secure": [], "insecure": [fd]}
    assert env[INDEX_ENV] == "2"
    assert env["A"] == "b"
    assert "WATCHDOG_USEC" not in env


def test_workers_back_off_without_jitter_by_default() -> None:
    assert WorkerSpec(argv=["x"], count=1).restart == WORKER_RESTARTS
    assert (WORKER_RESTARTS.backoff_initial, WORKER_RESTARTS.backoff_max, WORKER_RESTARTS.jitter) == (0.5, 10.0, 0.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"argv": []}, "argv"),
        ({"argv": "python"}, "argv"),
        ({"count": 0}, "count"),
        ({"stop_grace": -1.0}, "stop_grace"),
    ],
)
def test_worker_spec_rejects_bad_values(overrides: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"argv": ["x"], "count": 1, **overrides}
    with pytest.raises(ValueError, match=message):
        WorkerSpec(**values)
