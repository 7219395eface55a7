"""Generic process supervision plus an ASGI app served by hypercorn, in one anyio task group.

Knows nothing of Streamlit or FastAPI. Exit codes are documented on `ExitCode`. Names load on first use, so
that `supervisor.early` can start a child before anyio and hypercorn are imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "ASGIApp": "supervisor.serve",
    "ChildSpec": "supervisor.child",
    "Decision": "supervisor.policy",
    "ExitCode": "supervisor.exit_codes",
    "FailureLedger": "supervisor.policy",
    "MemoryBudget": "supervisor.memory_budget",
    "GiveUp": "supervisor.policy",
    "PrestartedChild": "supervisor.early",
    "Restart": "supervisor.policy",
    "RestartPolicy": "supervisor.policy",
    "ServeConfig": "supervisor.serve",
    "StateHub": "supervisor.state",
    "StateName": "supervisor.state",
    "SupervisorControl": "supervisor.state",
    "UpstreamState": "supervisor.state",
    "WebSocketLimits": "supervisor.ws_watchdog",
    "WorkerSpec": "supervisor.workers",
    "default_state_file_path": "supervisor.state_file",
    "memory_limit_bytes": "supervisor.memory_budget",
    "exit_process": "supervisor.process_exit",
    "pdeathsig_preexec": "supervisor.process",
    "prestart": "supervisor.early",
    "read_upstream": "supervisor.state_file",
    "run": "supervisor.runner",
    "run_supervised": "supervisor.runner",
    "sd_notify": "supervisor.notify",
    "write_state_file": "supervisor.state_file",
}

if TYPE_CHECKING:
    from supervisor.child import ChildSpec
    from supervisor.early import PrestartedChild, prestart
    from supervisor.exit_codes import ExitCode
    from supervisor.memory_budget import MemoryBudget, memory_limit_bytes
    from supervisor.notify import sd_notify
    from supervisor.policy import Decision, FailureLedger, GiveUp, Restart, RestartPolicy
    from supervisor.process import pdeathsig_preexec
    from supervisor.process_exit import exit_process
    from supervisor.runner import run, run_supervised
    from supervisor.serve import ASGIApp, ServeConfig
    from supervisor.state import StateHub, StateName, SupervisorControl, UpstreamState
    from supervisor.state_file import default_state_file_path, read_upstream, write_state_file
    from supervisor.workers import WorkerSpec
    from supervisor.ws_watchdog import WebSocketLimits

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
    "ServeConfig",
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
    "prestart",
    "read_upstream",
    "run",
    "run_supervised",
    "sd_notify",
    "write_state_file",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'supervisor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
