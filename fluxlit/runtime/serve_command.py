"""`fluxlit serve` once the target is loaded: log the plan and hand it to the supervisor, in one process or several."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fluxlit.config.settings import Settings
from fluxlit.config.sources import ResolvedSettings, replace
from fluxlit.runtime.addresses import with_concrete_port
from fluxlit.runtime.early_start import EarlyChild
from fluxlit.runtime.worker_handoff import handoff_environment

if TYPE_CHECKING:
    from fluxlit_supervisor import WorkerSpec  # ~40 ms, only for --workers above 1

    from fluxlit.targets import LoadedTarget


def serve_command(resolved: ResolvedSettings, target: LoadedTarget, early: EarlyChild | None = None) -> int:
    """Run until a signal (exit 0) or a supervision failure (its exit code)."""
    settings = resolved.settings
    # Imported here, not at the top: `fluxlit serve` imports this module before it starts Streamlit early, and
    # logging's ~25 ms and the plan's ~1 s (python -X importtime: FastAPI, the proxy, hypercorn) would delay it.
    from fluxlit.observability.logs import bind_process_fields, configure_logging, get_logger
    from fluxlit.runtime.serve_plan import build_serve_plan

    configure_logging(settings.log_level, settings.log_format)
    log = get_logger("fluxlit")
    settings = with_concrete_port(settings, early.port if early is not None else None)
    configured = settings  # workers name themselves when no replica id was given
    if not settings.replica_id:
        settings = replace(settings, replica_id=f"{socket.gethostname()}-{os.getpid()}")
    # Pages and app.urls read these at request time, in this process and (through its env) in the child.
    os.environ["FLUXLIT_TRUST_PROXY"] = "1" if settings.trust_proxy else "0"
    os.environ["FLUXLIT_PUBLIC_BASE_URL"] = settings.public_base_url

    bind_process_fields(replica=settings.replica_id)
    plan = build_serve_plan(settings, target)
    log.info(
        "fluxlit.starting",
        target=settings.target,
        binds=list(plan.serve.binds),
        api_prefix=settings.api_mount_path,
        root_path=settings.root_path,
        streamlit=plan.child is not None,
        streamlit_upstream=settings.streamlit_upstream or None,
        streamlit_prestarted=early is not None and plan.child is not None and plan.child.started(early.child),
        ws_ping_interval_s=settings.ws_ping_interval_s,
        ws_reassembly_budget_bytes=plan.reassembly_budget.limit,
    )
    from fluxlit_supervisor import RunSpec, run  # the runner with hypercorn, ~0.1 s: see the imports above

    spec = RunSpec(
        app=plan.gateway,
        serve=plan.serve,
        child=plan.child,
        policy=plan.policy,
        hub=plan.hub,
        state_file=plan.state_file,
        on_child_output=plan.on_child_output,
        before_stop=plan.before_stop,
        prestarted=early.child if early is not None else None,
        workers=worker_spec(configured, plan.state_file) if settings.workers > 1 else None,
    )
    return int(run(spec))


# A worker's drain takes graceful_timeout plus the supervisor's own margins (cancel, wind-down).
_WORKER_STOP_SLACK_S = 5.0


def worker_spec(settings: Settings, state_file: Path | None) -> WorkerSpec:
    """The extra gateway processes of `--workers N` (module `fluxlit.runtime.gateway_worker`), on our state file
    (None: they front an external Streamlit, which each probes itself)."""
    from fluxlit_supervisor import WorkerSpec

    return WorkerSpec(
        argv=[sys.executable, "-m", "fluxlit.runtime.gateway_worker"],
        count=settings.workers - 1,
        env=handoff_environment(settings, state_file),
        stop_grace=settings.graceful_timeout_s + _WORKER_STOP_SLACK_S,
    )
