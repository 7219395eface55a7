"""A child started before the event loop: spawned like any child, stopped from sync code, adopted by the runner."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from fluxlit_supervisor import ChildSpec, ExitCode, run_supervised
from fluxlit_supervisor.early import PrestartedChild, pidfds_work, prestart

from tests._lifespan import answer_lifespan
from tests.supervisor.test_run_supervised import run_spec

SLEEPER = "import time; time.sleep(60)"
SIGTERM_IGNORER = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('armed', flush=True); time.sleep(60)"
)

pytestmark = pytest.mark.skipif(not pidfds_work(), reason="no pidfd support here: prestart() returns None")


def python(code: str) -> Callable[[int], Sequence[str]]:
    return lambda port: [sys.executable, "-c", code, str(port)]


@pytest.fixture
def early_children() -> Iterator[list[PrestartedChild]]:
    """Every child a test starts early, SIGKILLed afterwards if a test failed before stopping it."""
    children: list[PrestartedChild] = []
    yield children
    for child in children:
        child.stop(grace=0)


def start(children: list[PrestartedChild], argv: Callable[[int], Sequence[str]], **kwargs: Any) -> PrestartedChild:
    child = prestart(argv, kwargs.pop("env", {"EARLY_TEST": "1"}), **kwargs)
    assert child is not None
    children.append(child)
    return child


def wait_for_line(child: PrestartedChild, text: bytes) -> None:
    """Block until the (not yet attached) child wrote `text` on stdout."""
    pipe = child._popen.stdout
    assert pipe is not None
    assert text in pipe.readline()


def test_runs_in_its_own_session_with_stdin_from_dev_null_on_a_free_port(early_children: list[Any]) -> None:
    child = start(early_children, python(SLEEPER))
    assert os.getsid(child.pid) == child.pid
    assert os.readlink(f"/proc/{child.pid}/fd/0") == "/dev/null"
    assert child.argv[-1] == str(child.port)
    assert b"EARLY_TEST=1" in environ_of(child.pid)


def environ_of(pid: int) -> list[bytes]:
    """/proc/PID/environ once the exec has set it up: Popen returns when the exec closed its error pipe, which the
    kernel does before it lays out the new environment, so a read in between finds it empty (seen under load)."""
    deadline = time.monotonic() + 5
    while True:
        data = Path(f"/proc/{pid}/environ").read_bytes()
        if data or time.monotonic() > deadline:
            return data.split(b"\0")
        time.sleep(0.01)


def test_matches_only_the_same_command_environment_directory_and_host(early_children: list[Any]) -> None:
    child = start(early_children, python(SLEEPER))
    argv = [sys.executable, "-c", SLEEPER, str(child.port)]
    assert child.matches(argv, {"EARLY_TEST": "1"}, None, "127.0.0.1")
    assert not child.matches([*argv, "--more"], {"EARLY_TEST": "1"}, None, "127.0.0.1")
    assert not child.matches(argv, {"EARLY_TEST": "2"}, None, "127.0.0.1")
    assert not child.matches(argv, {"EARLY_TEST": "1"}, "/tmp", "127.0.0.1")
    assert not child.matches(argv, {"EARLY_TEST": "1"}, None, "::1")


def test_spec_started_compares_the_command_for_the_early_port(early_children: list[Any]) -> None:
    child = start(early_children, python(SLEEPER))
    assert ChildSpec(argv=python(SLEEPER), env={"EARLY_TEST": "1"}).started(child)
    assert not ChildSpec(argv=python(SLEEPER), env={}).started(child)
    assert not ChildSpec(argv=python("pass"), env={"EARLY_TEST": "1"}).started(child)


def test_stop_sends_sigterm_reaps_and_is_idempotent(early_children: list[Any], pid_gone: Any) -> None:
    child = start(early_children, python(SLEEPER))
    assert child.poll() is None
    assert child.stop() == -signal.SIGTERM
    assert pid_gone(child.pid)
    assert child.stop() == -signal.SIGTERM
    assert child.poll() == -signal.SIGTERM


def test_stop_kills_a_child_that_ignores_sigterm_after_the_grace(early_children: list[Any]) -> None:
    child = start(early_children, python(SIGTERM_IGNORER))
    wait_for_line(child, b"armed")
    started = time.monotonic()
    assert child.stop(grace=0.3) == -signal.SIGKILL
    assert 0.3 <= time.monotonic() - started < 5


def test_stop_kills_group_members_left_behind_by_the_leader(
    early_children: list[Any], tmp_path: Path, pid_gone: Any
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys; "
        "p = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)']); "
        f"open({str(pidfile)!r}, 'w').write(str(p.pid)); print('spawned', flush=True); import time; time.sleep(60)"
    )
    child = start(early_children, python(code))
    wait_for_line(child, b"spawned")
    grandchild = int(pidfile.read_text())
    child.stop(grace=0.2)
    deadline = time.monotonic() + 5
    while not pid_gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pid_gone(grandchild)


def test_leaving_the_with_block_on_an_error_stops_it(early_children: list[Any], pid_gone: Any) -> None:
    child = start(early_children, python(SLEEPER))
    with pytest.raises(KeyError), child:
        raise KeyError("the target failed to import")
    assert pid_gone(child.pid)
    assert child.returncode == -signal.SIGTERM


def test_without_pidfds_nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(pid: int) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", unsupported)
    assert not pidfds_work()
    assert prestart(python(SLEEPER), {}) is None


def test_an_empty_command_is_refused() -> None:
    with pytest.raises(ValueError, match="argv is empty"):
        prestart(lambda port: [], {})


@pytest.mark.anyio
async def test_wait_needs_attach_first(early_children: list[Any]) -> None:
    child = start(early_children, python(SLEEPER))
    with pytest.raises(RuntimeError, match="attach"):
        await child.wait()


@pytest.mark.parametrize(
    "anyio_backend",
    ["asyncio", pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")],
)
@pytest.mark.anyio
async def test_attached_it_streams_output_and_reports_its_exit(early_children: list[Any]) -> None:
    child = start(early_children, python("import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"))
    await child.attach()
    await child.attach()  # idempotent
    assert child.stdout is not None
    assert child.stderr is not None
    with anyio.fail_after(10):
        assert await child.stdout.read() == b"out\n"
        assert await child.stderr.read() == b"err\n"
        assert await child.wait() == 3
    assert child.returncode == 3
    assert child.stop() == 3


@pytest.mark.anyio
async def test_attach_after_it_exited_reports_the_exit_at_once(early_children: list[Any]) -> None:
    child = start(early_children, python("raise SystemExit(5)"))
    deadline = time.monotonic() + 10
    while child.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 - no event before attach()
        await anyio.sleep(0.01)
    await child.attach()
    with anyio.fail_after(1):
        assert await child.wait() == 5


@pytest.mark.anyio
async def test_terminate_from_async_code(early_children: list[Any], pid_gone: Any) -> None:
    child = start(early_children, python(SLEEPER))
    with anyio.fail_after(10):
        assert await child.terminate(grace=2) == -signal.SIGTERM
    assert pid_gone(child.pid)


# ------------------------------------------------------------------------------------ adopted by run_supervised


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"app ok"})


async def serve_until_ready_then_stop(
    hub: Any, port: int, child: ChildSpec | None, early: PrestartedChild, *, stop_when_ready: bool = True
) -> int:
    """run_supervised with `early`; request a stop once the gateway is ready (or let it end on its own)."""
    code: list[int] = []

    async def main() -> None:
        code.append(
            await run_supervised(
                run_spec(
                    app,
                    port,
                    child,
                    hub,
                    graceful_timeout=2.0,
                    ready_callback=hub.request_stop if stop_when_ready else None,
                    prestarted=early,
                )
            )
        )

    with anyio.fail_after(30):
        await main()
    return code[0]


def fake_spec(fake_child: Any, *args: str, **overrides: Any) -> ChildSpec:
    spec: ChildSpec = fake_child(*args, **overrides)
    return spec


@pytest.mark.parametrize(
    "anyio_backend",
    ["asyncio", pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")],
)
@pytest.mark.anyio
async def test_a_matching_early_child_becomes_generation_one(
    hub: Any, free_port: Any, fake_child: Any, early_children: list[Any], pid_gone: Any
) -> None:
    spec = fake_spec(fake_child, "--stdout", "hello early")
    early = start(early_children, spec.argv, env=dict(spec.env))
    code = await serve_until_ready_then_stop(hub, free_port(), spec, early)
    assert code == ExitCode.OK
    ready = [s for s in hub.history if s.state == "ready"]
    assert [(s.pid, s.port, s.generation) for s in ready] == [(early.pid, early.port, 1)]
    assert pid_gone(early.pid)
    assert early.returncode is not None


@pytest.mark.anyio
async def test_the_early_childs_output_reaches_the_callback(
    hub: Any, free_port: Any, fake_child: Any, early_children: list[Any]
) -> None:
    spec = fake_spec(fake_child, "--stdout", "hello early")
    early = start(early_children, spec.argv, env=dict(spec.env))
    lines: list[tuple[str, str, int]] = []

    async def main() -> int:
        return await run_supervised(
            run_spec(
                app,
                free_port(),
                spec,
                hub,
                graceful_timeout=2.0,
                ready_callback=hub.request_stop,
                on_child_output=lambda stream, line, pid, generation: lines.append((stream, line, pid)),
                prestarted=early,
            )
        )

    with anyio.fail_after(30):
        assert await main() == ExitCode.OK
    assert ("stdout", "hello early", early.pid) in lines


@pytest.mark.anyio
async def test_an_early_child_with_another_command_is_stopped_and_a_new_one_started(
    hub: Any, free_port: Any, fake_child: Any, early_children: list[Any], pid_gone: Any
) -> None:
    spec = fake_spec(fake_child)
    early = start(early_children, fake_spec(fake_child, "--status", "200").argv, env=dict(spec.env))
    assert await serve_until_ready_then_stop(hub, free_port(), spec, early) == ExitCode.OK
    assert early.pid not in hub.pids
    assert early.returncode is not None
    assert pid_gone(early.pid)
    assert [s.generation for s in hub.history if s.state == "ready"] == [1]


@pytest.mark.anyio
async def test_an_early_child_is_stopped_when_no_child_is_configured(
    hub: Any, free_port: Any, fake_child: Any, early_children: list[Any]
) -> None:
    spec = fake_spec(fake_child)
    early = start(early_children, spec.argv, env=dict(spec.env))
    assert await serve_until_ready_then_stop(hub, free_port(), None, early) == ExitCode.OK
    assert early.returncode is not None


@pytest.mark.anyio
async def test_an_early_child_is_stopped_when_the_port_is_taken(
    hub: Any, fake_child: Any, early_children: list[Any]
) -> None:
    spec = fake_spec(fake_child)
    early = start(early_children, spec.argv, env=dict(spec.env))
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        code = await serve_until_ready_then_stop(hub, port, spec, early, stop_when_ready=False)
    assert code == ExitCode.PORT_UNAVAILABLE
    assert early.returncode is not None


@pytest.mark.anyio
async def test_an_early_child_that_died_fails_the_start_with_its_stderr(
    hub: Any, free_port: Any, fake_child: Any, early_children: list[Any]
) -> None:
    spec = fake_spec(fake_child, "--exit-now", "--exit-code", "3", "--stderr", "boom early")
    early = start(early_children, spec.argv, env=dict(spec.env))
    deadline = time.monotonic() + 10
    while early.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 - no event before attach()
        await anyio.sleep(0.01)
    code = await serve_until_ready_then_stop(hub, free_port(), spec, early, stop_when_ready=False)
    assert code == ExitCode.CHILD_START_FAILED
    assert "boom early" in hub.current.detail
    assert "exit code 3" in hub.current.detail
