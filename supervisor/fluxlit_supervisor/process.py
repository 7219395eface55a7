"""One child process group: free port, spawn options with parent-death signal, stop with escalation.

The one place that starts and stops a supervised process: the child, the early child and the workers (and any
user of this package that runs children of its own) spawn through `SpawnOptions` and stop through the one stop
sequence here, from async code or, blocking, from sync code.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypedDict

if TYPE_CHECKING:  # asyncio and anyio load on first use: `supervisor.early` spawns before they are imported
    import asyncio

    import anyio

logger = logging.getLogger("supervisor")

_PR_SET_PDEATHSIG = 1
_GROUP_POLL_INTERVAL = 0.05
_KILL_WAIT = 5.0  # for the kernel to deliver a SIGKILL and the leader to be reaped


class ChildProcess(Protocol):
    """What supervision needs of a running child: an asyncio subprocess or an adopted early one."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    @property
    def stdout(self) -> asyncio.StreamReader | None: ...

    @property
    def stderr(self) -> asyncio.StreamReader | None: ...

    async def wait(self) -> int: ...


def pick_free_port(host: str) -> int:
    """A port free on `host` now, from the kernel (bind :0, read, close): racy by nature, so callers verify the bind.

    Exported so that users of this package pick ports the same way instead of writing their own.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def describe_returncode(returncode: int | None) -> str:
    """Say how a process ended: 'exit code 3', 'killed by SIGKILL', or 'still running'."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit code {returncode}"


@functools.cache
def _libc_prctl() -> Callable[..., int] | None:
    # Resolved once in the parent: the forked child must not load libraries between fork and exec.
    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return function


def pdeathsig_preexec(signum: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to send `signum` to the child when the forking thread dies (Linux only).

    SIGKILL by default, not SIGTERM: once the parent is gone the child's stdout/stderr pipes are broken, and a
    child whose SIGTERM handler writes to them (Streamlit prints "Stopping...") dies of BrokenPipeError
    inside the handler and keeps running. With no parent left there is nothing graceful to do anyway.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = _libc_prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        # The parent may have died between fork and prctl; then no signal will ever come.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


class PopenArguments(TypedDict):
    """`SpawnOptions` as keyword arguments of `subprocess.Popen` (and so of `asyncio.create_subprocess_exec`)."""

    stdin: int
    stdout: int | None
    stderr: int | None
    env: dict[str, str]
    cwd: str | None
    pass_fds: tuple[int, ...]
    start_new_session: bool
    preexec_fn: Callable[[], None] | None


@dataclass(frozen=True)
class SpawnOptions:
    """How every supervised process starts: its own session, stdin from /dev/null, a parent-death signal.

    Its own session (and so its own process group, whose id is its pid) lets a stop reach its children too, and
    keeps a terminal's Ctrl-C for the supervisor, which then stops the group in order.
    """

    env: Mapping[str, str] = field(default_factory=dict)  # set on top of this process's environment
    unset_env: tuple[str, ...] = ()  # names removed from this process's environment first
    cwd: str | None = None
    capture_output: bool = False  # stdout and stderr piped to us; otherwise inherited
    pass_fds: tuple[int, ...] = ()
    death_signal: int = signal.SIGKILL  # see pdeathsig_preexec

    def environment(self) -> dict[str, str]:
        """The child's whole environment: ours without `unset_env`, then `env` on top."""
        environment = {name: value for name, value in os.environ.items() if name not in self.unset_env}
        environment.update(self.env)
        return environment

    def popen_arguments(self) -> PopenArguments:
        """Keyword arguments for `subprocess.Popen` and `asyncio.create_subprocess_exec` alike."""
        output = subprocess.PIPE if self.capture_output else None
        return {
            "stdin": subprocess.DEVNULL,  # a child that prompts (Streamlit's first-run email) would wait forever
            "stdout": output,
            "stderr": output,
            "env": self.environment(),
            "cwd": self.cwd,
            "pass_fds": self.pass_fds,
            "start_new_session": True,
            "preexec_fn": pdeathsig_preexec(self.death_signal),
        }


async def spawn_child(argv: Sequence[str], options: SpawnOptions) -> asyncio.subprocess.Process:
    """Start argv as `options` say, on the running event loop.

    Must run on the event-loop thread: PR_SET_PDEATHSIG is tied to the thread that forks.
    """
    import asyncio  # ~30 ms: the early start imports this module before any event loop exists

    return await asyncio.create_subprocess_exec(*_program(argv), **options.popen_arguments())


def popen_child(argv: Sequence[str], options: SpawnOptions) -> subprocess.Popen[bytes]:
    """Start argv as `options` say, from sync code; piped output is unbuffered, so an event loop can adopt it."""
    return subprocess.Popen(_program(argv), bufsize=0, **options.popen_arguments())


def _program(argv: Sequence[str]) -> tuple[str, ...]:
    if not argv:
        raise ValueError("the child argv is empty: ChildSpec.argv(port) must return the program and its args")
    return tuple(argv)


def signal_group(pgid: int, signum: int) -> bool:
    """Send `signum` to a process group; False when the group is gone."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        # A zombie-only group on some kernels answers EPERM; there is nothing left to signal.
        return False
    return True


def group_exists(pgid: int) -> bool:
    """Whether any process (zombies included) is still in group `pgid`."""
    try:
        os.killpg(pgid, 0)
    except OSError as exc:
        return exc.errno not in (errno.ESRCH, errno.EPERM)
    return True


KillNotice = Callable[[int, float, bool], None]
"""Told (pid, grace, forced) when a group had to be SIGKILLed."""


class BlockingChild(Protocol):
    """What a stop from sync code needs of a child: reap it without blocking, and wait for its exit a while."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def wait_blocking(self, timeout: float) -> None: ...


@dataclass(frozen=True)
class _AwaitGroup:
    """Wait until the leader has exited and its group is empty, at most `timeout` seconds (less when hurried)."""

    timeout: float


@dataclass(frozen=True)
class _AwaitLeader:
    """Wait until the leader has exited, at most `timeout` seconds."""

    timeout: float


def _stop_steps(
    pgid: int,
    returncode: Callable[[], int | None],
    grace: float,
    *,
    first_signal: int | None,
    forced: Callable[[], bool],
    kill_wait: float,
    on_kill: KillNotice,
) -> Generator[_AwaitGroup | _AwaitLeader, None, None]:
    """The one stop sequence; its drivers (`stop_process_group`, `stop_process_group_blocking`) do the waits.

    The group id is the leader's pid (start_new_session); a pid cannot be reused while its group exists,
    so signalling the group after the leader is reaped only reaches its leftover members.
    """
    if first_signal is not None and returncode() is None:
        signal_group(pgid, first_signal)
    # Members may outlive the leader (Streamlit's own children): they share the rest of the grace.
    yield _AwaitGroup(max(grace, 0.0))
    if (returncode() is None or group_exists(pgid)) and signal_group(pgid, signal.SIGKILL):
        on_kill(pgid, grace, forced())
    if returncode() is None:
        yield _AwaitLeader(kill_wait)
        if returncode() is None:
            logger.error(
                "pid %d survived SIGKILL for %.1fs (uninterruptible sleep?)", pgid, kill_wait, extra={"pid": pgid}
            )


def _kill_logger(name: str) -> KillNotice:
    def notice(pid: int, grace: float, forced: bool) -> None:
        logger.warning(
            "%s (pid %d) still running %s; sent SIGKILL to its group",
            name,
            pid,
            "on a forced stop" if forced else f"{grace:g}s after SIGTERM",
            extra={"pid": pid, "grace": grace, "forced": forced},
        )

    return notice


async def stop_process_group(
    proc: ChildProcess,
    grace: float,
    *,
    first_signal: int | None = signal.SIGTERM,
    hurry: anyio.Event | None = None,
    kill_wait: float = _KILL_WAIT,
    name: str = "child",
    on_kill: KillNotice | None = None,
) -> int | None:
    """Stop the child's group: `first_signal`, SIGKILL after `grace` (or once `hurry` is set), the leader reaped.

    `first_signal` None means it was sent already (a second SIGTERM can make a server skip its drain). Returns
    the exit code, None when the leader could not be reaped. Shielded: a stop must never leave the child behind.
    """
    # anyio (~45 ms) only once a loop runs: the early start imports this module for its blocking stop.
    import anyio

    from fluxlit_supervisor.concurrency import first_of

    def hurried() -> bool:
        return hurry is not None and hurry.is_set()

    steps = _stop_steps(
        proc.pid,
        lambda: proc.returncode,
        grace,
        first_signal=first_signal,
        forced=hurried,
        kill_wait=kill_wait,
        on_kill=on_kill or _kill_logger(name),
    )
    with anyio.CancelScope(shield=True):
        for step in steps:
            with anyio.move_on_after(step.timeout):
                if isinstance(step, _AwaitLeader):
                    await proc.wait()
                    continue
                await first_of(proc.wait, hurry.wait if hurry is not None else anyio.sleep_forever)
                # No event exists for "the group is empty": poll it.
                while group_exists(proc.pid) and not hurried():  # noqa: ASYNC110
                    await anyio.sleep(_GROUP_POLL_INTERVAL)
    return proc.returncode


def stop_process_group_blocking(
    proc: BlockingChild | subprocess.Popen[bytes],
    grace: float,
    *,
    first_signal: int | None = signal.SIGTERM,
    kill_wait: float = _KILL_WAIT,
    name: str = "child",
    on_kill: KillNotice | None = None,
) -> int | None:
    """`stop_process_group` for sync code, blocking: the same signals, grace and reaping, without a hurry."""
    child = _BlockingPopen(proc) if isinstance(proc, subprocess.Popen) else proc
    steps = _stop_steps(
        child.pid,
        child.poll,
        grace,
        first_signal=first_signal,
        forced=lambda: False,
        kill_wait=kill_wait,
        on_kill=on_kill or _kill_logger(name),
    )
    for step in steps:
        deadline = time.monotonic() + step.timeout
        child.wait_blocking(step.timeout)
        if isinstance(step, _AwaitGroup):
            while group_exists(child.pid) and time.monotonic() < deadline:
                time.sleep(_GROUP_POLL_INTERVAL)
    return child.poll()


class _BlockingPopen:
    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> int | None:
        return self._popen.poll()

    def wait_blocking(self, timeout: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)
