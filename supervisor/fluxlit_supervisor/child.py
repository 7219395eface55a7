"""The child lifecycle: spawn, wait ready, watch health, and restart or give up under the policy."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import anyio

from fluxlit_supervisor.concurrency import Pulse, first_of
from fluxlit_supervisor.exit_codes import ExitCode
from fluxlit_supervisor.output import OutputCallback, new_tail, pump_lines
from fluxlit_supervisor.policy import FailureLedger, GiveUp, RestartPolicy, UniformSource
from fluxlit_supervisor.probe import probe_http
from fluxlit_supervisor.process import (
    ChildProcess,
    SpawnOptions,
    describe_returncode,
    pick_free_port,
    spawn_child,
    stop_process_group,
)
from fluxlit_supervisor.reaper import ManagedPids
from fluxlit_supervisor.state import StateName, UpstreamState

if TYPE_CHECKING:
    from fluxlit_supervisor.early import PrestartedChild

logger = logging.getLogger("supervisor")

_FIRST_POLL_DELAY = 0.05
_MAX_POLL_DELAY = 0.1  # a refused loopback connect is cheap; a long gap only delays readiness
_MAX_PROBE_TIMEOUT = 2.0
# Output still buffered in the pipes when the child ends gets this long to reach the callback.
_DRAIN_OUTPUT_TIMEOUT = 1.0


@dataclass(frozen=True)
class ChildSpec:
    """How to start the child and how to tell that it is ready."""

    argv: Callable[[int], Sequence[str]]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    host: str = "127.0.0.1"
    ready_path: str = "/"
    start_timeout: float = 60.0
    stop_grace: float = 5.0
    health_interval: float = 2.0
    health_failures: int = 2
    name: str = "child"

    def spawn_options(self) -> SpawnOptions:
        """How each generation is started: its output piped to the supervisor, its environment over ours."""
        return SpawnOptions(env=self.env, cwd=self.cwd, capture_output=True)

    def started(self, early: PrestartedChild) -> bool:
        """Whether `early` runs exactly the command this spec would start on its port."""
        return early.matches(self.argv(early.port), self.env, self.cwd, self.host)

    def __post_init__(self) -> None:
        if not self.ready_path.startswith("/"):
            raise ValueError(f"ChildSpec.ready_path={self.ready_path!r} must start with '/': try '/'")
        for name in ("start_timeout", "health_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ChildSpec.{name}={getattr(self, name)!r} must be > 0 seconds")
        if not self.stop_grace >= 0:
            raise ValueError(f"ChildSpec.stop_grace={self.stop_grace!r} must be >= 0 seconds")
        if self.health_failures < 1:
            raise ValueError(f"ChildSpec.health_failures={self.health_failures!r} must be >= 1")


@dataclass(frozen=True)
class RunOutcome:
    """How one generation ended."""

    became_ready: bool
    uptime: float
    reason: str
    restart_requested: bool = False
    stderr_tail: tuple[str, ...] = ()


Readiness = Literal["ready", "exited", "restart", "timeout"]


class ChildSupervisor:
    """Runs generations of one child until the policy gives up; cancel it to stop (the child is killed)."""

    def __init__(
        self,
        spec: ChildSpec,
        policy: RestartPolicy,
        *,
        publish: Callable[[UpstreamState], None],
        restart: Pulse,
        is_stopping: Callable[[], bool],
        hurry: anyio.Event,
        managed: ManagedPids,
        on_output: OutputCallback,
        on_ready: Callable[[], None],
        rng: UniformSource,
        prestarted: PrestartedChild | None = None,
    ) -> None:
        """`prestarted`, already checked with `spec.started(...)`, is adopted as the first generation."""
        self._spec = spec
        self._prestarted = prestarted
        self._policy = policy
        self._publish = publish
        self._restart = restart
        self._is_stopping = is_stopping
        self._hurry = hurry
        self._managed = managed
        self._on_output = on_output
        self._on_ready = on_ready
        self._rng = rng
        self._generation = 0
        self._port: int | None = None
        self._pid: int | None = None

    async def run(self) -> ExitCode:
        """Supervise until a terminal outcome; returns the exit code that outcome maps to."""
        ledger = FailureLedger()
        ever_ready = False
        while True:
            self._generation += 1
            outcome = await self._run_generation()
            if self._is_stopping():
                return ExitCode.OK
            if outcome.restart_requested:
                continue
            ever_ready = ever_ready or outcome.became_ready
            if not ever_ready:
                return self._fail(ExitCode.CHILD_START_FAILED, outcome, "failed to start")
            if self._policy.on_exit == "exit":
                return self._fail(ExitCode.CHILD_EXITED, outcome, "exited and the policy says exit")
            ledger, decision = self._policy.decide(ledger, now=time.monotonic(), uptime=outcome.uptime, rng=self._rng)
            if isinstance(decision, GiveUp):
                why = f"failed {decision.failures} times within {decision.window:g}s; giving up"
                return self._fail(ExitCode.CRASH_BUDGET_EXHAUSTED, outcome, why)
            detail = f"{outcome.reason}; restart in {decision.delay:.2f}s"
            logger.warning(
                "%s %s",
                self._spec.name,
                detail,
                extra=self._extra(delay=decision.delay, consecutive=decision.consecutive_failures),
            )
            self._set_state("restarting", detail)
            with anyio.move_on_after(decision.delay):
                await self._restart.wait()
            self._restart.consume()

    def _fail(self, code: ExitCode, outcome: RunOutcome, why: str) -> ExitCode:
        tail = "\n".join(outcome.stderr_tail)
        logger.error(
            "%s %s (%s); exit %d %s%s",
            self._spec.name,
            why,
            outcome.reason,
            int(code),
            code.name,
            f"\nlast stderr lines:\n{tail}" if tail else " (no stderr output)",
            extra=self._extra(exit_code=int(code), stderr_tail=list(outcome.stderr_tail)),
        )
        last_line = outcome.stderr_tail[-1] if outcome.stderr_tail else ""
        self._set_state("failed", f"{why}: {outcome.reason}" + (f"; stderr: {last_line}" if last_line else ""))
        return code

    async def _run_generation(self) -> RunOutcome:
        spec = self._spec
        self._pid = None
        proc: ChildProcess
        early, self._prestarted = self._prestarted, None
        if early is not None:
            self._port = early.port
            self._managed.pids.add(early.pid)
            with anyio.CancelScope(shield=True):
                await early.attach()
            proc, argv = early, list(early.argv)
            started = {"prestarted_s_ago": round(time.monotonic() - early.started_at, 3)}
        else:
            try:
                self._port = pick_free_port(spec.host)
            except OSError as exc:
                self._port = None
                return RunOutcome(became_ready=False, uptime=0.0, reason=f"no free port on {spec.host!r}: {exc}")
            self._set_state("starting", "")
            argv = list(spec.argv(self._port))
            try:
                # Shielded: a cancel landing between fork and our hold on `proc` would orphan the child.
                with self._managed.spawn_in_progress(), anyio.CancelScope(shield=True):
                    proc = await spawn_child(argv, spec.spawn_options())
            except OSError as exc:
                return RunOutcome(became_ready=False, uptime=0.0, reason=f"could not run {argv[0]!r}: {exc}")
            started = {}
        self._pid = proc.pid
        self._managed.pids.add(proc.pid)
        logger.info("%s started", spec.name, extra=self._extra(argv=argv, **started))
        self._set_state("starting", "")
        tail = new_tail()
        try:
            async with anyio.create_task_group() as pumps:
                for reader, stream in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
                    assert reader is not None  # both are piped: ChildSpec.spawn_options, prestart
                    pumps.start_soon(
                        pump_lines,
                        reader,
                        stream,
                        proc.pid,
                        self._generation,
                        self._on_output,
                        tail if stream == "stderr" else None,
                    )
                outcome = await self._lifecycle(proc)
                await stop_process_group(proc, spec.stop_grace, hurry=self._hurry, name=spec.name)
                pumps.cancel_scope.deadline = anyio.current_time() + _DRAIN_OUTPUT_TIMEOUT
        finally:
            await stop_process_group(proc, spec.stop_grace, hurry=self._hurry, name=spec.name)
            self._managed.pids.discard(proc.pid)
        return RunOutcome(
            became_ready=outcome.became_ready,
            uptime=outcome.uptime,
            reason=outcome.reason,
            restart_requested=outcome.restart_requested,
            stderr_tail=tuple(tail),
        )

    async def _lifecycle(self, proc: ChildProcess) -> RunOutcome:
        readiness = await self._wait_ready(proc)
        if readiness == "restart":
            return self._restart_outcome(became_ready=False, uptime=0.0)
        if readiness == "exited":
            why = f"exited before becoming ready ({describe_returncode(proc.returncode)})"
            return RunOutcome(became_ready=False, uptime=0.0, reason=why)
        if readiness == "timeout":
            why = f"not ready within {self._spec.start_timeout:g}s (GET {self._spec.ready_path} got no 2xx)"
            return RunOutcome(became_ready=False, uptime=0.0, reason=why)
        ready_at = time.monotonic()
        logger.info("%s ready", self._spec.name, extra=self._extra())
        self._set_state("ready", "")
        self._on_ready()
        which = await first_of(proc.wait, self._restart.wait, self._watch_health)
        uptime = time.monotonic() - ready_at
        if which == 1:
            return self._restart_outcome(became_ready=True, uptime=uptime)
        reason = describe_returncode(proc.returncode)
        if not self._is_stopping():
            # Not ready any more from this instant, even while leftover group members get their grace.
            self._set_state("restarting" if self._policy.on_exit == "restart" else "failed", reason)
        return RunOutcome(became_ready=True, uptime=uptime, reason=reason)

    def _restart_outcome(self, *, became_ready: bool, uptime: float) -> RunOutcome:
        self._restart.consume()
        logger.info("%s restart requested", self._spec.name, extra=self._extra())
        self._set_state("restarting", "restart requested")
        return RunOutcome(became_ready, uptime, "restart requested", restart_requested=True)

    async def _wait_ready(self, proc: ChildProcess) -> Readiness:
        outcomes: tuple[Readiness, ...] = ("exited", "restart", "ready")
        with anyio.move_on_after(self._spec.start_timeout):
            return outcomes[await first_of(proc.wait, self._restart.wait, self._poll_until_ready)]
        return "timeout"

    async def _poll_until_ready(self) -> None:
        delay = _FIRST_POLL_DELAY
        while not await self._probe():
            await anyio.sleep(delay)
            delay = min(delay * 2, _MAX_POLL_DELAY)

    async def _watch_health(self) -> None:
        failures = 0
        while True:
            await anyio.sleep(self._spec.health_interval)
            if await self._probe():
                if failures >= self._spec.health_failures:
                    logger.info("%s healthy again", self._spec.name, extra=self._extra())
                    self._set_state("ready", "")
                failures = 0
                continue
            failures += 1
            if failures == self._spec.health_failures:
                detail = f"{failures} consecutive health probes failed"
                logger.warning("%s unhealthy: %s", self._spec.name, detail, extra=self._extra())
                self._set_state("unhealthy", detail)

    async def _probe(self) -> bool:
        assert self._port is not None
        timeout = min(_MAX_PROBE_TIMEOUT, self._spec.health_interval)
        return await probe_http(self._spec.host, self._port, self._spec.ready_path, timeout)

    def _set_state(self, state: StateName, detail: str) -> None:
        self._publish(
            UpstreamState(
                state=state,
                host=self._spec.host,
                port=self._port,
                pid=self._pid,
                generation=self._generation,
                since=time.time(),
                detail=detail,
            )
        )

    def _extra(self, **fields: object) -> dict[str, object]:
        return {
            "child": self._spec.name,
            "generation": self._generation,
            "pid": self._pid,
            "port": self._port,
            "supervisor_pid": os.getpid(),
            **fields,
        }
