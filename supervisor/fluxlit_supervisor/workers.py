"""Extra server processes sharing the public listening sockets: spawn with the fds, restart on death, stop."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import anyio
from hypercorn.config import Sockets

from fluxlit_supervisor.policy import FailureLedger, RestartPolicy
from fluxlit_supervisor.process import (
    SpawnOptions,
    describe_returncode,
    signal_group,
    spawn_child,
    stop_process_group,
)
from fluxlit_supervisor.reaper import ManagedPids

logger = logging.getLogger("supervisor")

# What a worker reads to find its sockets: {"secure": [fd, ...], "insecure": [fd, ...]}, and its index (1..N-1).
FDS_ENV = "SUPERVISOR_WORKER_FDS"
INDEX_ENV = "SUPERVISOR_WORKER_INDEX"
# A worker must not talk to systemd: READY=1, STATUS= and the watchdog belong to the supervisor.
_SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
# A worker that ran min_uptime before dying restarts after backoff_initial again; no jitter, workers are few.
WORKER_RESTARTS = RestartPolicy(backoff_initial=0.5, backoff_max=10.0, jitter=0.0, min_uptime=10.0)


@dataclass(frozen=True)
class WorkerSpec:
    """`count` extra processes running `argv`, each serving the supervisor's already-bound public sockets."""

    argv: Sequence[str]
    count: int
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    stop_grace: float = 10.0
    # Workers always restart: of the policy only the backoff (and min_uptime, which resets it) applies. Giving up
    # would leave the run serving on fewer processes than asked, with nothing to report it.
    restart: RestartPolicy = WORKER_RESTARTS

    def __post_init__(self) -> None:
        if not self.argv or isinstance(self.argv, str):
            raise ValueError(f"WorkerSpec.argv={self.argv!r} must be a non-empty sequence: the program and its args")
        if self.count < 1:
            raise ValueError(f"WorkerSpec.count={self.count!r} must be at least 1 (the extra processes to start)")
        if not self.stop_grace >= 0:
            raise ValueError(f"WorkerSpec.stop_grace={self.stop_grace!r} must be >= 0 seconds")


@dataclass(frozen=True)
class InheritedSockets:
    """The listening sockets a worker was given, as hypercorn `fd://N` binds."""

    index: int
    secure: tuple[str, ...]
    insecure: tuple[str, ...]


def inherited_sockets(environ: Mapping[str, str]) -> InheritedSockets:
    """Read what the supervisor passed; ValueError naming the variable when this is not a worker."""
    try:
        fds = json.loads(environ[FDS_ENV])
        index = int(environ[INDEX_ENV])
        secure = tuple(f"fd://{int(fd)}" for fd in fds["secure"])
        insecure = tuple(f"fd://{int(fd)}" for fd in fds["insecure"])
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(
            f"{FDS_ENV}/{INDEX_ENV} are missing or malformed ({exc!r}): a worker is started by the supervisor"
        ) from None
    return InheritedSockets(index, secure, insecure)


def worker_spawn_options(spec: WorkerSpec, sockets: Sockets, index: int) -> SpawnOptions:
    """How worker `index` starts: its listening fds passed and named in its env, minus systemd's variables."""
    fds = {
        "secure": [s.fileno() for s in sockets.secure_sockets],
        "insecure": [s.fileno() for s in sockets.insecure_sockets],
    }
    return SpawnOptions(
        env={**spec.env, FDS_ENV: json.dumps(fds), INDEX_ENV: str(index)},
        unset_env=_SYSTEMD_ENV,
        cwd=spec.cwd,
        pass_fds=(*fds["secure"], *fds["insecure"]),
    )


class WorkerPool:
    """Keeps `spec.count` workers running until `stop()`; every worker is reaped by PID before `stop()` returns."""

    def __init__(self, spec: WorkerSpec, sockets: Sockets, managed: ManagedPids) -> None:
        self._spec = spec
        self._sockets = sockets
        self._managed = managed
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = False
        self._scope = anyio.CancelScope()
        self._done = anyio.Event()
        self._running = False
        self._terminated: set[int] = set()
        self._rng = random.Random()
        self.starts = 0

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self._procs.values() if proc.returncode is None]

    async def run(self) -> None:
        """Start every worker and restart each one that dies; returns when `stop()` cancels it."""
        self._running = True
        try:
            with self._scope:
                async with anyio.create_task_group() as group:
                    for index in range(1, self._spec.count + 1):
                        group.start_soon(self._keep_running, index)
        finally:
            self._done.set()

    async def _keep_running(self, index: int) -> None:
        policy = self._spec.restart
        ledger = FailureLedger()
        while not self._stopping:
            started = time.monotonic()
            proc = await self._spawn(index)
            code = await proc.wait()
            self._managed.pids.discard(proc.pid)
            self._terminated.discard(proc.pid)  # the pid may be reused, by a new worker too
            if self._stopping:
                return
            now = time.monotonic()
            ledger = policy.record_exit(ledger, now=now, uptime=now - started)
            delay = policy.next_delay(ledger.consecutive, self._rng)
            logger.warning(
                "worker %d (pid %d) died with %s; restarting in %.1fs",
                index,
                proc.pid,
                describe_returncode(code),
                delay,
                extra={"worker": index, "pid": proc.pid, "returncode": code, "restart_delay": delay},
            )
            await anyio.sleep(delay)

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        # On the event-loop thread: PR_SET_PDEATHSIG is tied to the thread that forks.
        # Shielded: a stop arriving mid-spawn must still find the new process in `_procs` to stop it.
        with anyio.CancelScope(shield=True), self._managed.spawn_in_progress():
            proc = await spawn_child(self._spec.argv, worker_spawn_options(self._spec, self._sockets, index))
            self._managed.pids.add(proc.pid)
        self._procs[index] = proc
        self.starts += 1
        logger.info("worker %d started (pid %d)", index, proc.pid, extra={"worker": index, "pid": proc.pid})
        return proc

    def begin_stop(self) -> None:
        """SIGTERM every worker now (they drain in parallel with the supervisor's own server); no restarts.

        Once per process: a second SIGTERM would make a worker skip its drain.
        """
        self._stopping = True
        for proc in self._procs.values():
            # Only while unreaped: a reaped pid (and so its group id) may already belong to someone else.
            if proc.pid not in self._terminated and proc.returncode is None:
                self._terminated.add(proc.pid)
                signal_group(proc.pid, signal.SIGTERM)

    async def stop(self, *, force: bool = False) -> None:
        """SIGTERM (SIGKILL when `force`), wait up to `stop_grace`, SIGKILL the rest, reap all. Shielded."""
        with anyio.CancelScope(shield=True):
            self._stopping = True
            self._scope.cancel()
            if self._running:
                await self._done.wait()
            self.begin_stop()  # after the cancel: a worker spawned meanwhile is signalled too
            hurry = anyio.Event()
            if force:
                hurry.set()
            procs = list(self._procs.values())
            # SIGTERM went out in begin_stop, once: a second one would make a worker skip its drain.
            stop = functools.partial(stop_process_group, first_signal=None, hurry=hurry, name="worker")
            async with anyio.create_task_group() as group:
                for proc in procs:
                    group.start_soon(stop, proc, self._spec.stop_grace)
            for proc in procs:
                if proc.returncode is not None:
                    self._managed.pids.discard(proc.pid)
