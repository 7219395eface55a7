"""Generic process supervision plus an ASGI app served by hypercorn, in one anyio task group.

Knows nothing of Streamlit or FastAPI. Exit codes are documented on `ExitCode`. Names load on first use, so
that `supervisor.early` can start a child before anyio and hypercorn are imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "ASGIApp": "fluxlit_supervisor.serve",
    "ChildSpec": "fluxlit_supervisor.child",
    "Decision": "fluxlit_supervisor.policy",
    "ExitCode": "fluxlit_supervisor.exit_codes",
    "FailureLedger": "fluxlit_supervisor.policy",
    "MemoryBudget": "fluxlit_supervisor.websocket.memory_budget",
    "GiveUp": "fluxlit_supervisor.policy",
    "PrestartedChild": "fluxlit_supervisor.early",
    "Restart": "fluxlit_supervisor.policy",
    "RestartPolicy": "fluxlit_supervisor.policy",
    "RunSpec": "fluxlit_supervisor.runner",
    "ServeConfig": "fluxlit_supervisor.serve",
    "Sidecar": "fluxlit_supervisor.sidecar",
    "SidecarStartError": "fluxlit_supervisor.sidecar",
    "SpawnOptions": "fluxlit_supervisor.process",
    "StateHub": "fluxlit_supervisor.state",
    "StateName": "fluxlit_supervisor.state",
    "SupervisorControl": "fluxlit_supervisor.state",
    "UpstreamState": "fluxlit_supervisor.state",
    "WebSocketLimits": "fluxlit_supervisor.websocket.watchdog",
    "WorkerSpec": "fluxlit_supervisor.workers",
    "default_state_file_path": "fluxlit_supervisor.state_file",
    "memory_limit_bytes": "fluxlit_supervisor.websocket.memory_budget",
    "exit_process": "fluxlit_supervisor.process_exit",
    "pdeathsig_preexec": "fluxlit_supervisor.process",
    "pick_free_port": "fluxlit_supervisor.process",
    "popen_child": "fluxlit_supervisor.process",
    "prestart": "fluxlit_supervisor.early",
    "read_upstream": "fluxlit_supervisor.state_file",
    "run": "fluxlit_supervisor.runner",
    "run_supervised": "fluxlit_supervisor.runner",
    "sd_notify": "fluxlit_supervisor.notify",
    "spawn_child": "fluxlit_supervisor.process",
    "stop_process_group": "fluxlit_supervisor.process",
    "stop_process_group_blocking": "fluxlit_supervisor.process",
    "write_state_file": "fluxlit_supervisor.state_file",
}

if TYPE_CHECKING:
    from fluxlit_supervisor.child import ChildSpec
    from fluxlit_supervisor.early import PrestartedChild, prestart
    from fluxlit_supervisor.exit_codes import ExitCode
    from fluxlit_supervisor.notify import sd_notify
    from fluxlit_supervisor.policy import Decision, FailureLedger, GiveUp, Restart, RestartPolicy
    from fluxlit_supervisor.process import (
        SpawnOptions,
        pdeathsig_preexec,
        pick_free_port,
        popen_child,
        spawn_child,
        stop_process_group,
        stop_process_group_blocking,
    )
    from fluxlit_supervisor.process_exit import exit_process
    from fluxlit_supervisor.runner import RunSpec, run, run_supervised
    from fluxlit_supervisor.serve import ASGIApp, ServeConfig
    from fluxlit_supervisor.sidecar import Sidecar, SidecarStartError
    from fluxlit_supervisor.state import StateHub, StateName, SupervisorControl, UpstreamState
    from fluxlit_supervisor.state_file import default_state_file_path, read_upstream, write_state_file
    from fluxlit_supervisor.websocket.memory_budget import MemoryBudget, memory_limit_bytes
    from fluxlit_supervisor.websocket.watchdog import WebSocketLimits
    from fluxlit_supervisor.workers import WorkerSpec

__all__ = [
    "ASGIApp",
    "ChildSpec",
    "Decision",
    "ExitCode",
    "FailureLedger",
    "GiveUp",
    "MemoryBudget",
    "PrestartedChild",
    "Restart",
    "RestartPolicy",
    "RunSpec",
    "ServeConfig",
    "Sidecar",
    "SidecarStartError",
    "SpawnOptions",
    "StateHub",
    "StateName",
    "SupervisorControl",
    "UpstreamState",
    "WebSocketLimits",
    "WorkerSpec",
    "default_state_file_path",
    "exit_process",
    "memory_limit_bytes",
    "pdeathsig_preexec",
    "pick_free_port",
    "popen_child",
    "prestart",
    "read_upstream",
    "run",
    "run_supervised",
    "sd_notify",
    "spawn_child",
    "stop_process_group",
    "stop_process_group_blocking",
    "write_state_file",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
