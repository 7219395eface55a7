"""Streamlit started before the target is imported, so the two boot side by side; adopted or stopped by the plan."""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fluxlit.config.sources import ResolvedSettings
from fluxlit.errors import ConfigError
from fluxlit.runtime.addresses import with_concrete_port
from fluxlit.runtime.streamlit_child import child_environment
from fluxlit.streamlit.command import streamlit_argv
from fluxlit.targets import target_exists

if TYPE_CHECKING:
    from fluxlit_supervisor.early import PrestartedChild


@dataclass(frozen=True)
class EarlyChild:
    """Streamlit started before the target is imported, and the gateway port its environment names."""

    child: PrestartedChild
    port: int


@contextlib.contextmanager
def streamlit_started_early(resolved: ResolvedSettings) -> Generator[EarlyChild | None, None, None]:
    """Start Streamlit now, so it boots while this process imports the target, FastAPI and the gateway.

    Its command and environment come from the settings known before the import; the supervisor adopts it only
    when the final plan (with the app's own settings and streamlit_run_args) would start exactly the same, and
    stops it otherwise. It is stopped, by PID and reaped, on every path that leaves this block without that
    (a target that fails to import, a bad setting, a port in use). None when it cannot start early: under TLS
    (the loopback port is chosen with the plan), when the target is not found without importing it, and when
    the run fronts an external Streamlit (--streamlit-upstream) and starts none.
    """
    settings = resolved.settings
    early: EarlyChild | None = None
    if not settings.certfile and not settings.streamlit_upstream and target_exists(settings.target):
        settings = with_concrete_port(settings)
        try:
            env = child_environment(settings)
        except ConfigError:
            env = None  # every bind is a unix socket: the plan reports it
        if env is not None:
            from fluxlit_supervisor.early import prestart  # ~13 ms, paid only when Streamlit can start early

            root = settings.root_path
            child = prestart(lambda port: streamlit_argv(port, root_path=root), env)
            early = EarlyChild(child, settings.port) if child is not None else None
    try:
        yield early
    finally:
        if early is not None:
            early.child.stop()  # a no-op once the supervisor has run it (it reaps what it adopts or discards)
