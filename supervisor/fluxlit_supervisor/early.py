"""A child started before the event loop runs, so it boots while the parent still imports; supervision adopts it.

Only the standard library is imported here: the point is to fork before the parent's slow imports. The child is
spawned with the `SpawnOptions` a `ChildSpec` gives (own session, parent-death signal, stdin from /dev/null, piped
output) and its exit is watched through a pidfd, so nothing but this object ever reaps it.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from fluxlit_supervisor.process import (
    SpawnOptions,
    pick_free_port,
    popen_child,
    stop_process_group,
    stop_process_group_blocking,
)

if TYPE_CHECKING:
    import asyncio

logger = logging.getLogger("supervisor")


def pidfds_work() -> bool:
    """Whether this kernel (and seccomp policy) lets us watch a process through a pidfd."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


def prestart(
    argv: Callable[[int], Sequence[str]],
    env: Mapping[str, str],
    *,
    cwd: str | None = None,
    host: str = "127.0.0.1",
) -> PrestartedChild | None:
    """Start `argv(port)` on a free port of `host` now, from the calling (main) thread; None when not possible.

    Pass the result to `run(..., prestarted=...)`: it is adopted as the first generation when the ChildSpec would
    start exactly the same command (argv for that port, env, cwd, host), and stopped otherwise. Use it as a
    context manager so that it is stopped on every path that never reaches `run`.
    """
    if not pidfds_work():
        return None
    port = pick_free_port(host)
    command = tuple(argv(port))
    popen = popen_child(command, SpawnOptions(env=env, cwd=cwd, capture_output=True))
    return PrestartedChild(command, dict(env), cwd, host, port, popen, os.pidfd_open(popen.pid))


class PrestartedChild:
    """One early child: a `ChildProcess` once `attach`ed to the running loop, stoppable from sync code too."""

    def __init__(
        self,
        argv: tuple[str, ...],
        env: dict[str, str],
        cwd: str | None,
        host: str,
        port: int,
        popen: subprocess.Popen[bytes],
        pidfd: int,
    ) -> None:
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.host = host
        self.port = port
        self.started_at = time.monotonic()
        self._popen = popen
        self._pidfd: int | None = pidfd
        self._returncode: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exited: asyncio.Event | None = None
        self.stdout: asyncio.StreamReader | None = None
        self.stderr: asyncio.StreamReader | None = None

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._returncode

    def matches(self, argv: Sequence[str], env: Mapping[str, str], cwd: str | None, host: str) -> bool:
        """Whether starting the child now would run exactly what runs already."""
        return (tuple(argv), dict(env), cwd, host) == (self.argv, self.env, self.cwd, self.host)

    def poll(self) -> int | None:
        """Reap the child if it has exited (never blocks); its exit code as asyncio reports one, else None."""
        if self._returncode is not None:
            return self._returncode
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # pragma: no cover - only a foreign waitpid(-1) in this process gets here
            pid, status = self.pid, 0
        if pid == 0:
            return None
        self._returncode = os.waitstatus_to_exitcode(status)
        self._popen.returncode = self._returncode  # so Popen neither waits again nor warns when collected
        self._release_pidfd()
        return self._returncode

    def _release_pidfd(self) -> None:
        if self._pidfd is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        if self._exited is not None:
            self._exited.set()

    async def attach(self) -> None:
        """Hand the child to the running event loop: its output as stream readers, its exit as an event."""
        if self._loop is not None:
            return
        import asyncio  # ~30 ms that the early start, which runs before any event loop, does not pay

        loop = asyncio.get_running_loop()
        self._loop = loop
        self._exited = asyncio.Event()
        self.stdout = await _stream_reader(loop, self._popen.stdout)
        self.stderr = await _stream_reader(loop, self._popen.stderr)
        if self.poll() is None:
            assert self._pidfd is not None
            loop.add_reader(self._pidfd, self.poll)
        else:
            self._exited.set()

    async def wait(self) -> int:
        """Wait for the child to exit (after `attach`) and return its exit code."""
        if self._exited is None:
            raise RuntimeError("PrestartedChild.wait() before attach(): attach it to the running loop first")
        await self._exited.wait()
        assert self._returncode is not None
        return self._returncode

    async def terminate(self, grace: float) -> int | None:
        """Stop the child's group from async code: SIGTERM, SIGKILL after `grace`, reaped."""
        await self.attach()
        return await stop_process_group(self, grace)

    def stop(self, grace: float = 5.0) -> int | None:
        """Stop it from sync code, blocking: SIGTERM to the group, SIGKILL after `grace`, reaped. Idempotent."""
        stop_process_group_blocking(self, grace)
        if self._loop is None:  # once attached, the loop's pipe transports own (and close) the pipes
            for pipe in (self._popen.stdout, self._popen.stderr):
                if pipe is not None:
                    pipe.close()
        return self._returncode

    def wait_blocking(self, timeout: float) -> None:
        """Block until the child exits (reaping it) or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while self.poll() is None and self._pidfd is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            select.select([self._pidfd], [], [], remaining)

    def __enter__(self) -> PrestartedChild:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


async def _stream_reader(loop: asyncio.AbstractEventLoop, pipe: object) -> asyncio.StreamReader | None:
    import asyncio  # as in attach()

    if pipe is None:  # pragma: no cover - prestart always pipes both streams
        return None
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader
