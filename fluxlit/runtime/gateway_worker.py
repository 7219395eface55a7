"""One extra gateway process of `fluxlit serve --workers N`: the same gateway, on the supervisor's sockets.

The supervisor starts it as `python -m fluxlit.runtime.gateway_worker` (see `fluxlit_supervisor.workers`) with the
listening sockets passed as fds, the resolved settings as JSON in FLUXLIT_WORKER_SETTINGS, and the path of the
upstream state file it publishes in FLUXLIT_WORKER_STATE_FILE: the shared Streamlit child is followed through that file.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from fluxlit_supervisor.state import UpstreamState

from fluxlit.config.sources import replace
from fluxlit.gateway.upstream_view import UpstreamView, view_of_state
from fluxlit.runtime.worker_handoff import SETTINGS_ENV, STATE_FILE_ENV, settings_from_json
from fluxlit.targets import load_target

# How stale a worker's view of Streamlit may be: one stat() per interval at most, none per request in between.
STATE_CHECK_INTERVAL_S = 0.05


class StateFileStatus:
    """The supervisor's view of Streamlit, read from its state file when the file changes (checked every 50 ms)."""

    def __init__(
        self,
        path: Path,
        stopping: Callable[[], bool],
        *,
        check_interval: float = STATE_CHECK_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._stopping = stopping
        self._interval = check_interval
        self._clock = clock
        self._next_check = float("-inf")
        self._key: tuple[int, int, int] | None = None
        self._state: UpstreamState | None = None
        self._status = UpstreamView("starting", detail="waiting for the supervisor's state file")

    def __call__(self) -> UpstreamView:
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self._interval
            self._refresh()
        if self._state is not None and self._stopping():
            return view_of_state(self._state, True)
        return self._status

    def _refresh(self) -> None:
        try:
            info = os.stat(self._path)
        except OSError:
            self._key, self._state = None, None
            self._status = UpstreamView("starting", detail="waiting for the supervisor's state file")
            return
        key = (info.st_mtime_ns, info.st_ino, info.st_size)
        if key == self._key:
            return
        try:
            state = UpstreamState.from_json(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self._key, self._state = None, None  # read again at the next check
            self._status = UpstreamView("unknown", detail=f"unreadable state file: {exc}")
            return
        self._key, self._state = key, state
        self._status = view_of_state(state, False)


def _exit_on_early_signal(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main() -> int:
    """Serve until SIGTERM (0) or a failure (the supervisor's exit code); the supervisor restarts it."""
    # A stop may come while the target still imports: exit cleanly, not by the default SIGTERM action.
    signal.signal(signal.SIGTERM, _exit_on_early_signal)
    # Only after the handler: the supervisor's runner brings hypercorn and anyio, ServePlan the gateway's
    # modules (python -X importtime: ~0.2 s together before the target's own imports).
    from fluxlit_supervisor import RunSpec, StateHub, run
    from fluxlit_supervisor.workers import inherited_sockets

    from fluxlit.observability.logs import bind_process_fields, configure_logging, get_logger
    from fluxlit.runtime.serve_plan import build_serve_plan

    sockets = inherited_sockets(os.environ)
    settings = settings_from_json(os.environ[SETTINGS_ENV])
    configure_logging(settings.log_level, settings.log_format)
    if not settings.replica_id:
        settings = replace(settings, replica_id=f"{socket.gethostname()}-{os.getpid()}")
    bind_process_fields(replica=settings.replica_id, worker=sockets.index)
    target = load_target(settings.target)
    hub = StateHub()
    # A run fronting an external Streamlit has no state file of ours: the plan probes that Streamlit itself.
    status = (
        None if settings.streamlit_upstream else StateFileStatus(Path(os.environ[STATE_FILE_ENV]), lambda: hub.stopping)
    )
    plan = build_serve_plan(settings, target, hub=hub, upstream=status)
    tls = bool(settings.certfile)
    serve = dataclasses.replace(
        plan.serve,
        binds=sockets.secure if tls else sockets.insecure,
        hypercorn_options={**plan.serve.hypercorn_options, "insecure_bind": list(sockets.insecure) if tls else []},
    )
    get_logger("fluxlit").info("fluxlit.worker_starting", worker=sockets.index, pid=os.getpid())
    return int(run(RunSpec(app=plan.gateway, serve=serve, hub=hub, before_stop=plan.before_stop)))


if __name__ == "__main__":  # pragma: no cover - the supervisor runs this module with -m; main() is tested
    from fluxlit_supervisor import exit_process

    exit_process(main())  # not sys.exit: a handler still blocking in a worker thread would hold the exit
