"""run_supervised end to end with a fake child: readiness, restarts, exit codes, graceful stop."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fluxlit_supervisor import ChildSpec, ExitCode, RestartPolicy, RunSpec, ServeConfig, run_supervised

from tests._certs import self_signed_certificate
from tests._lifespan import answer_lifespan

# anyio.wait_readable arrived in anyio 4.7; the floor (4.4) has only the older name.
wait_readable = getattr(anyio, "wait_readable", None) or getattr(anyio, "wait_socket_readable")  # noqa: B009

FAST_POLICY = RestartPolicy(backoff_initial=0.05, backoff_max=0.2, jitter=0.0, min_uptime=30.0)


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 200; `/sleep/<seconds>` answers after that long."""
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    path: str = scope["path"]
    if path.startswith("/sleep/"):
        await anyio.sleep(float(path.rsplit("/", 1)[1]))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"app ok"})


async def failing_lifespan_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "database unreachable"})


def run_spec(
    app: Any,
    port: int,
    child: ChildSpec | None,
    hub: Any,
    *,
    graceful_timeout: float = 5.0,
    policy: RestartPolicy = FAST_POLICY,
    state_file: Path | None = None,
    **options: Any,
) -> RunSpec:
    """`app` served on loopback `port` without signal handlers: the test stops the run through `hub`."""
    serve = ServeConfig(binds=(f"127.0.0.1:{port}",), graceful_timeout=graceful_timeout)
    return RunSpec(app, serve, child, policy, hub, state_file, install_signal_handlers=False, **options)


@dataclass
class Run:
    port: int
    code: int | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    ready: anyio.Event = field(default_factory=anyio.Event)
    ready_calls: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def running(
    hub: Any,
    port: int,
    child: ChildSpec | None,
    *,
    policy: RestartPolicy = FAST_POLICY,
    graceful_timeout: float = 5.0,
    app: Any = asgi_app,
    state_file: Path | None = None,
    **kwargs: Any,
) -> AsyncGenerator[Run, None]:
    """Run the supervisor in the background; stop it (bounded) when the block ends if it is still running."""
    result = Run(port=port)

    def on_ready() -> None:
        result.ready_calls += 1
        result.ready.set()

    async def main() -> None:
        result.code = await run_supervised(
            run_spec(
                app,
                port,
                child,
                hub,
                graceful_timeout=graceful_timeout,
                policy=policy,
                state_file=state_file,
                ready_callback=on_ready,
                **kwargs,
            )
        )
        result.done.set()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(main)
            try:
                yield result
            finally:
                if not result.done.is_set():
                    hub.request_stop()
                    with anyio.fail_after(15):
                        await result.done.wait()


async def get(url: str, read_timeout: float = 5.0) -> httpx.Response:
    async with httpx.AsyncClient(timeout=read_timeout) as client:
        return await client.get(url)


@contextlib.asynccontextmanager
async def stuck_request(run: Run, path: str = "/") -> AsyncGenerator[None, None]:
    """A request to `path` in flight for the whole block, whose failure is expected; cancelled when the block ends."""
    async with anyio.create_task_group() as group:

        async def request() -> None:
            with contextlib.suppress(httpx.HTTPError):
                await get(f"{run.base_url}{path}", read_timeout=10)

        group.start_soon(request)
        yield
        group.cancel_scope.cancel()


async def seconds_to_stop(run: Run, hub: Any) -> float:
    """Request a stop and return how long the run took to end."""
    started = time.monotonic()
    hub.request_stop()
    await run.done.wait()
    return time.monotonic() - started


@pytest.mark.anyio
async def test_child_becomes_ready_and_app_is_served(hub: Any, free_port: Any, fake_child: Any) -> None:
    async with running(hub, free_port(), fake_child()) as run:
        ready = await hub.wait_for(lambda s: s.state == "ready")
        assert ready.generation == 1
        assert ready.pid is not None
        assert ready.url == f"http://127.0.0.1:{ready.port}"
        child_reply = await get(f"{ready.url}/")
        assert child_reply.text == "child ok\n"
        with anyio.fail_after(5):
            await run.ready.wait()
        assert (await get(f"{run.base_url}/")).text == "app ok"
    assert run.code == ExitCode.OK
    assert run.ready_calls == 1
    assert hub.names() == ["starting", "ready", "stopped"]
    assert hub.stopping


@pytest.mark.anyio
async def test_graceful_stop_leaves_no_child_and_removes_state_file(
    hub: Any, free_port: Any, fake_child: Any, pid_gone: Callable[[int], bool], tmp_path: Path
) -> None:
    state_file = tmp_path / "upstream.json"
    async with running(hub, free_port(), fake_child(), state_file=state_file) as run:
        ready = await hub.wait_for(lambda s: s.state == "ready")
        assert '"state": "ready"' in state_file.read_text()
        hub.request_stop()
        await run.done.wait()
    assert run.code == ExitCode.OK
    assert pid_gone(ready.pid)
    assert not state_file.exists()


@pytest.mark.anyio
async def test_killed_child_restarts_with_new_generation_and_pid(hub: Any, free_port: Any, fake_child: Any) -> None:
    async with running(hub, free_port(), fake_child()):
        first = await hub.wait_for(lambda s: s.state == "ready")
        os.kill(first.pid, signal.SIGKILL)
        second = await hub.wait_for(lambda s: s.state == "ready" and s.generation == 2)
        assert second.pid != first.pid
    restarting = [s for s in hub.history if s.state == "restarting"]
    assert restarting
    assert "killed by SIGKILL" in restarting[0].detail


@pytest.mark.anyio
async def test_restart_request_starts_a_new_generation(hub: Any, free_port: Any, fake_child: Any) -> None:
    async with running(hub, free_port(), fake_child()) as run:
        first = await hub.wait_for(lambda s: s.state == "ready")
        hub.request_restart()
        second = await hub.wait_for(lambda s: s.state == "ready" and s.generation == 2)
        assert second.pid != first.pid
        assert (await get(f"{run.base_url}/")).status_code == 200
    assert run.code == ExitCode.OK


@pytest.mark.anyio
async def test_crash_budget_exhausted_exits_5(hub: Any, free_port: Any, fake_child: Any) -> None:
    policy = RestartPolicy(backoff_initial=0.01, backoff_max=0.05, jitter=0.0, max_failures=3, min_uptime=30.0)
    async with running(hub, free_port(), fake_child("--exit-after", "0.3", "--exit-code", "9"), policy=policy) as run:
        await run.done.wait()
    assert run.code == ExitCode.CRASH_BUDGET_EXHAUSTED
    assert hub.current.state == "failed"
    assert max(s.generation for s in hub.history) == 3


@pytest.mark.anyio
async def test_first_start_failure_exits_4_and_logs_stderr_tail(
    hub: Any, free_port: Any, fake_child: Any, caplog: pytest.LogCaptureFixture
) -> None:
    spec = fake_child("--exit-now", "--exit-code", "3", "--stderr", "ImportError: no module named nope")
    with caplog.at_level(logging.INFO, logger="supervisor"):
        async with running(hub, free_port(), spec) as run:
            await run.done.wait()
    assert run.code == ExitCode.CHILD_START_FAILED
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "supervisor"]
    assert errors
    assert "ImportError: no module named nope" in errors[0].getMessage()
    assert "exit code 3" in errors[0].getMessage()
    assert hub.current.state == "failed"
    assert run.ready_calls == 0


@pytest.mark.anyio
async def test_child_not_ready_within_start_timeout_exits_4(hub: Any, free_port: Any, fake_child: Any) -> None:
    async with running(hub, free_port(), fake_child("--status", "503", start_timeout=0.5)) as run:
        await run.done.wait()
    assert run.code == ExitCode.CHILD_START_FAILED
    assert "not ready within 0.5s" in hub.current.detail


@pytest.mark.anyio
async def test_unrunnable_program_exits_4(hub: Any, free_port: Any, tmp_path: Path) -> None:
    spec = ChildSpec(argv=lambda port: [str(tmp_path / "missing-program")], start_timeout=1.0)
    async with running(hub, free_port(), spec) as run:
        await run.done.wait()
    assert run.code == ExitCode.CHILD_START_FAILED
    assert "could not run" in hub.current.detail


@pytest.mark.anyio
async def test_on_exit_exit_returns_7(hub: Any, free_port: Any, fake_child: Any) -> None:
    policy = RestartPolicy(on_exit="exit")
    async with running(hub, free_port(), fake_child("--exit-after", "0.3"), policy=policy) as run:
        await run.done.wait()
    assert run.code == ExitCode.CHILD_EXITED
    assert hub.current.state == "failed"
    assert max(s.generation for s in hub.history) == 1


@pytest.mark.anyio
async def test_port_in_use_exits_6_before_starting_the_child(
    hub: Any, free_port: Any, fake_child: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        async with running(hub, port, fake_child()) as run:
            await run.done.wait()
    assert run.code == ExitCode.PORT_UNAVAILABLE
    assert hub.history == []
    assert any(f"127.0.0.1:{port}" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


@pytest.mark.anyio
async def test_graceful_stop_lets_an_inflight_request_finish(hub: Any, free_port: Any) -> None:
    arrived = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            arrived.set()
        await asgi_app(scope, receive, send)

    async with running(hub, free_port(), None, app=app) as run:
        await _wait_listening(run)
        async with anyio.create_task_group() as group:
            replies: list[httpx.Response] = []

            async def slow_request() -> None:
                replies.append(await get(f"{run.base_url}/sleep/0.5"))

            group.start_soon(slow_request)
            # In the app, not still connecting: a stop before that closes the connection instead (a loaded machine).
            with anyio.fail_after(10):
                await arrived.wait()
            hub.request_stop()
        await run.done.wait()
    assert replies[0].status_code == 200
    assert run.code == ExitCode.OK


@pytest.mark.anyio
async def test_graceful_timeout_cancels_a_stuck_request(hub: Any, free_port: Any) -> None:
    async with running(hub, free_port(), None, graceful_timeout=0.3) as run:
        await _wait_listening(run)
        async with stuck_request(run, "/sleep/60"):
            await anyio.sleep(0.2)
            elapsed = await seconds_to_stop(run, hub)
    assert run.code == ExitCode.OK
    assert elapsed < 2.5


@pytest.mark.anyio
async def test_second_stop_request_skips_the_drain(hub: Any, free_port: Any, fake_child: Any) -> None:
    async with running(hub, free_port(), fake_child("--ignore-sigterm", stop_grace=30.0), graceful_timeout=30) as run:
        ready = await hub.wait_for(lambda s: s.state == "ready")
        async with stuck_request(run, "/sleep/60"):
            await anyio.sleep(0.2)
            started = time.monotonic()
            hub.request_stop()
            await anyio.sleep(0.1)
            hub.request_stop()
            await run.done.wait()
            elapsed = time.monotonic() - started
    assert run.code == ExitCode.OK
    assert elapsed < 3
    assert ready.pid is not None


@pytest.mark.anyio
async def test_before_stop_runs_after_stopping_flips(hub: Any, free_port: Any) -> None:
    seen: list[bool] = []

    async def before_stop() -> None:
        seen.append(hub.stopping)

    async with running(hub, free_port(), None, before_stop=before_stop) as run:
        await _wait_listening(run)
        hub.request_stop()
        await run.done.wait()
    assert seen == [True]


@pytest.mark.anyio
async def test_stop_requested_before_the_run_starts_stops_at_once(hub: Any, free_port: Any) -> None:
    hub.request_stop()
    async with running(hub, free_port(), None) as run:
        await run.done.wait()
    assert run.code == ExitCode.OK


@pytest.mark.anyio
async def test_child_output_reaches_the_callback(hub: Any, free_port: Any, fake_child: Any, eventually: Any) -> None:
    lines: list[tuple[str, str, int, int]] = []
    spec = fake_child("--stdout", "hello out", "--stderr", "hello err")
    async with running(hub, free_port(), spec, on_child_output=lambda *a: lines.append(a)):
        ready = await hub.wait_for(lambda s: s.state == "ready")
        await eventually(lambda: len(lines) >= 2)
    assert ("stdout", "hello out", ready.pid, 1) in lines
    assert ("stderr", "hello err", ready.pid, 1) in lines


@pytest.mark.anyio
async def test_stopped_child_turns_unhealthy_then_recovers(hub: Any, free_port: Any, fake_child: Any) -> None:
    spec = fake_child(health_interval=0.2, health_failures=2)
    async with running(hub, free_port(), spec):
        ready = await hub.wait_for(lambda s: s.state == "ready")
        os.kill(ready.pid, signal.SIGSTOP)
        try:
            await hub.wait_for(lambda s: s.state == "unhealthy")
        finally:
            os.kill(ready.pid, signal.SIGCONT)
        recovered = await hub.wait_for(lambda s: s.state == "ready")
    assert recovered.pid == ready.pid
    assert recovered.generation == 1


@pytest.mark.anyio
async def test_stop_kills_the_whole_process_group(
    hub: Any, free_port: Any, fake_child: Any, tmp_path: Path, pid_gone: Any, eventually: Any
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    async with running(hub, free_port(), fake_child("--grandchild-pidfile", str(pidfile))) as run:
        await hub.wait_for(lambda s: s.state == "ready")
        grandchild = int(pidfile.read_text())
        hub.request_stop()
        await run.done.wait()
    await eventually(lambda: pid_gone(grandchild), within=3)


@pytest.mark.anyio
async def test_lifespan_startup_failure_exits_70(hub: Any, free_port: Any, fake_child: Any) -> None:
    async with running(hub, free_port(), fake_child(), app=failing_lifespan_app) as run:
        await run.done.wait()
    assert run.code == ExitCode.INTERNAL_ERROR


@pytest.mark.anyio
async def test_serves_without_a_child(hub: Any, free_port: Any) -> None:
    async with running(hub, free_port(), None) as run:
        await _wait_listening(run)
        assert (await get(f"{run.base_url}/")).text == "app ok"
    assert run.code == ExitCode.OK
    assert hub.history == []


@pytest.mark.slow
@pytest.mark.anyio
async def test_sigterm_ignoring_child_is_killed_after_grace(
    hub: Any, free_port: Any, fake_child: Any, pid_gone: Callable[[int], bool]
) -> None:
    async with running(hub, free_port(), fake_child("--ignore-sigterm", stop_grace=0.5)) as run:
        ready = await hub.wait_for(lambda s: s.state == "ready")
        started = time.monotonic()
        hub.request_stop()
        await run.done.wait()
    assert 0.4 < time.monotonic() - started < 5
    assert pid_gone(ready.pid)


async def _wait_listening(run: Run) -> None:
    with anyio.fail_after(10):
        await run.ready.wait()


@pytest.mark.anyio
async def test_systemd_hears_ready_once_status_watchdog_and_stopping(
    hub: Any, free_port: Any, fake_child: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify.sock"
    messages: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", "100000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)

        async def collect() -> None:
            while True:
                await wait_readable(listener)
                messages.append(listener.recv(4096).decode())

        async with anyio.create_task_group() as collector:
            collector.start_soon(collect)
            async with running(hub, free_port(), fake_child()) as run:
                await run.ready.wait()
                hub.request_restart()
                await hub.wait_for(lambda s: s.state == "ready" and s.generation == 2)
                await anyio.sleep(0.25)
            await anyio.sleep(0.05)
            collector.cancel_scope.cancel()
    assert messages.count("READY=1") == 1
    assert messages.count("WATCHDOG=1") >= 2
    assert messages.index("STOPPING=1") > messages.index("READY=1")
    statuses = [m for m in messages if m.startswith("STATUS=")]
    assert statuses[0].startswith("STATUS=child starting, generation 1")
    assert any(m.startswith("STATUS=child ready, generation 2") for m in statuses)
    assert statuses[-1].startswith("STATUS=child stopped")
    ready_at = messages.index("READY=1")
    assert any(m.startswith("STATUS=child ready, generation 1") for m in messages[:ready_at])


@pytest.mark.parametrize("anyio_backend", [pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")])
@pytest.mark.anyio
async def test_under_uvloop_restart_and_stop_work(
    hub: Any, free_port: Any, fake_child: Any, pid_gone: Callable[[int], bool]
) -> None:
    pytest.importorskip("uvloop")
    async with running(hub, free_port(), fake_child()) as run:
        first = await hub.wait_for(lambda s: s.state == "ready")
        os.kill(first.pid, signal.SIGKILL)
        second = await hub.wait_for(lambda s: s.state == "ready" and s.generation == 2)
        assert (await get(f"{run.base_url}/")).text == "app ok"
    assert run.code == ExitCode.OK
    assert pid_gone(second.pid)


async def stubborn_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Swallows the first cancellation of a request, as buggy apps do."""
    if scope["type"] != "http":
        return
    try:
        await anyio.sleep(60)
    except BaseException:
        await anyio.sleep(60)


@pytest.mark.anyio
async def test_a_request_that_ignores_cancellation_cannot_hold_the_stop(hub: Any, free_port: Any) -> None:
    async with running(hub, free_port(), None, graceful_timeout=0.2, app=stubborn_app) as run:
        await _wait_listening_on(run.port)
        async with stuck_request(run):
            await anyio.sleep(0.2)
            elapsed = await seconds_to_stop(run, hub)
    assert run.code == ExitCode.OK
    assert elapsed < 4


async def _wait_listening_on(port: int) -> None:
    with anyio.fail_after(10):
        while True:
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.02)
            else:
                await stream.aclose()
                return


@pytest.mark.anyio
async def test_missing_tls_certificate_exits_70_before_starting_the_child(
    hub: Any, free_port: Any, fake_child: Any, tmp_path: Path
) -> None:
    serve = ServeConfig(
        binds=(f"127.0.0.1:{free_port()}",), certfile=str(tmp_path / "no.pem"), keyfile=str(tmp_path / "no.key")
    )
    with anyio.fail_after(10):
        code = await run_supervised(
            RunSpec(asgi_app, serve, fake_child(), FAST_POLICY, hub, None, install_signal_handlers=False)
        )
    assert code == ExitCode.INTERNAL_ERROR
    assert hub.history == []


@pytest.mark.anyio
async def test_serves_https_with_a_certificate(hub: Any, free_port: Any, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    port = free_port()
    serve = ServeConfig(binds=(f"127.0.0.1:{port}",), certfile=str(cert), keyfile=str(key))
    ready = anyio.Event()
    async with anyio.create_task_group() as group:

        async def main() -> None:
            assert (
                await run_supervised(
                    RunSpec(
                        asgi_app,
                        serve,
                        None,
                        FAST_POLICY,
                        hub,
                        None,
                        install_signal_handlers=False,
                        ready_callback=ready.set,
                    )
                )
                == ExitCode.OK
            )

        group.start_soon(main)
        with anyio.fail_after(10):
            await ready.wait()
        async with httpx.AsyncClient(verify=False, timeout=5) as client:
            assert (await client.get(f"https://127.0.0.1:{port}/")).text == "app ok"
        hub.request_stop()
