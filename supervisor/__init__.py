"""Generic process supervision plus an ASGI app served by hypercorn, in one anyio task group.

Knows nothing of Streamlit or FastAPI. Exit codes are documented on `ExitCode`.
"""

from supervisor.child import ChildSpec
from supervisor.exit_codes import ExitCode
from supervisor.notify import sd_notify
from supervisor.policy import Decision, FailureLedger, GiveUp, Restart, RestartPolicy
from supervisor.process import pdeathsig_preexec
from supervisor.runner import run, run_supervised
from supervisor.serve import ASGIApp, ServeConfig
from supervisor.state import StateHub, StateName, SupervisorControl, UpstreamState
from supervisor.state_file import default_state_file_path, read_upstream, write_state_file

__all__ = [
    "ASGIApp",
    "ChildSpec",
    "Decision",
    "ExitCode",
    "FailureLedger",
    "GiveUp",
    "Restart",
    "RestartPolicy",
    "ServeConfig",
    "StateHub",
    "StateName",
    "SupervisorControl",
    "UpstreamState",
    "default_state_file_path",
    "pdeathsig_preexec",
    "read_upstream",
    "run",
    "run_supervised",
    "sd_notify",
    "write_state_file",
]
