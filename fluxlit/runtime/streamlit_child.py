"""The Streamlit child of a run: its command, its environment and how it is probed, as the supervisor's ChildSpec."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fluxlit.config.child_layout import ChildLayout
from fluxlit.config.settings import Settings
from fluxlit.runtime.addresses import internal_api_base
from fluxlit.streamlit.command import streamlit_argv

if TYPE_CHECKING:
    # ~40 ms (anyio): this module is imported before Streamlit starts early, only the plan needs a ChildSpec.
    from fluxlit_supervisor import ChildSpec


def child_environment(settings: Settings, loopback_port: int | None = None) -> dict[str, str]:
    spec = settings.target
    module_part, sep, attr = spec.rpartition(":")
    if sep and (module_part.endswith(".py") or "/" in module_part):
        spec = f"{Path(module_part).resolve()}:{attr}"  # the child runs from another script directory
    cwd = os.getcwd()
    pythonpath = os.pathsep.join(p for p in (cwd, os.environ.get("PYTHONPATH", "")) if p)
    layout = ChildLayout(
        app=spec,
        api_prefix=settings.api_mount_path,
        root_path=settings.root_path,
        internal_api_base=internal_api_base(settings, loopback_port),
        trust_proxy=settings.trust_proxy,
        public_base_url=settings.public_base_url,
    )
    return {**layout.environment(), "PYTHONPATH": pythonpath, "PYTHONUNBUFFERED": "1"}


def streamlit_child_spec(settings: Settings, extra_args: Sequence[str], loopback_port: int | None) -> ChildSpec:
    """What the supervisor starts, restarts and probes; a bad `streamlit_run_args` fails here, before any start."""
    from fluxlit_supervisor import ChildSpec

    root = settings.root_path
    streamlit_argv(0, root_path=root, extra=extra_args)  # validate reserved flags before anything starts
    return ChildSpec(
        argv=lambda port: streamlit_argv(port, root_path=root, extra=extra_args),
        env=child_environment(settings, loopback_port),
        ready_path=f"{root}/_stcore/health",
        start_timeout=settings.child_start_timeout_s,
        name="streamlit",
    )
