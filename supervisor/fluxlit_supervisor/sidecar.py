"""A child supervised without a server of ours: for an ASGI server's lifespan (`uvicorn app:app`), which serves.

It owns the same pieces a run gives its child (ChildSupervisor, the policy, the hub, the state file); it never binds,
never installs signal handlers (the server owns them) and never ends the process: a child that gives up leaves the
hub `failed`, and whatever reads the hub answers 503.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import anyio
import anyio.abc

from fluxlit_supervisor.child import ChildSpec, ChildSupervisor
from fluxlit_supervisor.concurrency import Pulse
from fluxlit_supervisor.exit_codes import ExitCode
from fluxlit_supervisor.output import OutputCallback, log_child_output
from fluxlit_supervisor.policy import RestartPolicy
from fluxlit_supervisor.reaper import ManagedPids
from fluxlit_supervisor.state import StateHub, UpstreamState
from fluxlit_supervisor.state_file import publish_state, remove_state_file

logger = logging.getLogger("supervisor")


class SidecarStartError(RuntimeError):
    """The child's supervision ended before its first generation became ready."""

    def __init__(self, code: ExitCode, detail: str) -> None:
        super().__init__(f"the child did not start ({code.name}): {detail}")
        self.code = code


class Sidecar:
    """Start with `await sidecar.start(group)` (returns once the child is ready), stop with `await sidecar.stop()`."""

    def __init__(
        self,
        spec: ChildSpec,
        policy: RestartPolicy,
        hub: StateHub,
        *,
        state_file: Path | None = None,
        on_output: OutputCallback = log_child_output,
    ) -> None:
        self._spec = spec
        self._policy = policy
        self._hub = hub
        self._state_file = state_file
        self._on_output = on_output
        self._stopping = False
        self._hurry = anyio.Event()
        self._ready = anyio.Event()
        self._done = anyio.Event()
        self._scope = anyio.CancelScope()
        self._restart = Pulse()
        self.exit_code: ExitCode | None = None

    async def start(self, group: anyio.abc.TaskGroup) -> None:
        """Supervise the child in `group`; raises SidecarStartError when it ends before becoming ready."""
        group.start_soon(self._supervise)
        with anyio.CancelScope() as waiting:

            async def cancel_when_done() -> None:
                await self._done.wait()
                waiting.cancel()

            group.start_soon(cancel_when_done)
            await self._ready.wait()
            waiting.cancel()
        if not self._ready.is_set():
            code = self.exit_code if self.exit_code is not None else ExitCode.CHILD_START_FAILED
            raise SidecarStartError(code, self._hub.current.detail)

    async def stop(self) -> None:
        """Stop the child (its process group, within `spec.stop_grace`) and remove the state file."""
        self._stopping = True
        self._scope.cancel()
        with anyio.CancelScope(shield=True):
            await self._done.wait()
        self._hub.publish(UpstreamState(state="stopped", detail="stopped on request"))
        if self._state_file is not None:
            remove_state_file(self._state_file)

    async def _supervise(self) -> None:
        supervisor = ChildSupervisor(
            self._spec,
            self._policy,
            publish=self._publish,
            restart=self._restart,
            is_stopping=lambda: self._stopping,
            hurry=self._hurry,
            managed=ManagedPids(),
            on_output=self._on_output,
            on_ready=self._ready.set,
            rng=random.Random(),
        )
        try:
            with self._scope:
                self.exit_code = await supervisor.run()
        finally:
            self._done.set()

    def _publish(self, state: UpstreamState) -> None:
        publish_state(self._hub, self._state_file, state)
