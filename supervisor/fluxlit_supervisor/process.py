"""One child process group: free port, spawn with parent-death signal, terminate with escalation."""

from __future__ import annotations

import ctypes
import errno
import functools
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # asyncio and anyio load on first use: `supervisor.early` spawns before they are imported
    import asyncio

    import anyio

logger = logging.getLogger("supervisor")

_PR_SET_PDEATHSIG = 1
_GROUP_POLL_INTERVAL = 0.05


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


async def spawn_child(argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> asyncio.subprocess.Process:
    """Start argv in a new session (own process group) with piped output and stdin from /dev/null.

    Must run on the event-loop thread: PR_SET_PDEATHSIG is tied to the thread that forks.
    """
    import asyncio

    if not argv:
        raise ValueError("the child argv is empty: ChildSpec.argv(port) must return the program and its args")
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
        cwd=cwd,
        start_new_session=True,
        preexec_fn=pdeathsig_preexec(),
    )


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


async def terminate_process_group(
    proc: ChildProcess,
    grace: float,
    *,
    hurry: anyio.Event | None = None,
    kill_wait: float = 5.0,
) -> int | None:
    """SIGTERM the child's group, SIGKILL it after `grace` (or once `hurry` is set), always reap the leader.

    Shielded from cancellation: a stop must never leave the child behind.

    The group id is the leader's pid (start_new_session); a pid cannot be reused while its group exists,
    so signalling the group after the leader is reaped only reaches its leftover members.
    """
    import anyio

    from fluxlit_supervisor.concurrency import first_of

    pgid = proc.pid
    with anyio.CancelScope(shield=True):
        if proc.returncode is None:
            signal_group(pgid, signal.SIGTERM)
        with anyio.move_on_after(max(grace, 0.0)):
            await first_of(proc.wait, hurry.wait if hurry is not None else anyio.sleep_forever)
            # Members may outlive the leader (Streamlit's own children): they share the rest of the grace.
            # No event exists for "the group is empty": poll it.
            while group_exists(pgid) and not (hurry is not None and hurry.is_set()):  # noqa: ASYNC110
                await anyio.sleep(_GROUP_POLL_INTERVAL)
        still_there = proc.returncode is None or group_exists(pgid)
        if still_there and signal_group(pgid, signal.SIGKILL):
            hurried = hurry is not None and hurry.is_set()
            logger.warning(
                "child group still running %s; sent SIGKILL",
                "on a forced stop" if hurried else f"{grace:g}s after SIGTERM",
                extra={"pid": proc.pid, "grace": grace, "forced": hurried},
            )
        if proc.returncode is None:
            with anyio.move_on_after(kill_wait):
                await proc.wait()
            if proc.returncode is None:
                logger.error(
                    "child pid %d survived SIGKILL for %.1fs (uninterruptible sleep?)",
                    proc.pid,
                    kill_wait,
                    extra={"pid": proc.pid},
                )
    return proc.returncode
