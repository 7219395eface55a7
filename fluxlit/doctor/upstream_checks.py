"""Doctor check of the gateway's pooled connections to Streamlit against its server's keep-alive."""

from __future__ import annotations

import importlib.metadata
import inspect
from pathlib import Path

from fluxlit.doctor.model import Check, DoctorContext, not_checked, passed, warned

# The module that runs Streamlit's uvicorn server. Older releases (1.54 for one) ship it too, but serve with
# Tornado unless the experimental `server.useStarlette` option is on: their STREAMLIT_SERVER_SWITCH names it.
STREAMLIT_SERVER_FILE = "streamlit/web/server/starlette/starlette_server.py"
STREAMLIT_SERVER_SWITCH = "streamlit/web/server/server.py"


def check_upstream_keep_alive(ctx: DoctorContext) -> Check:
    """The gateway's idle connections to Streamlit expire before Streamlit's server closes them (its keep-alive)."""
    settings = ctx.settings
    if settings is None:
        return not_checked(check_upstream_keep_alive, "the settings are invalid")
    idle = settings.upstream_pool_idle_timeout_s
    keep_alive, where = streamlit_keep_alive_s()
    if keep_alive is None:
        return passed(
            "upstream_keep_alive",
            f"pooled connections idle at most {idle:g} s and are checked for a close before each reuse; "
            f"Streamlit's server keep-alive is not known here ({where})",
        )
    if idle >= keep_alive:
        return warned(
            "upstream_keep_alive",
            f"FLUXLIT_GATEWAY_UPSTREAM_POOL_IDLE_TIMEOUT_S={idle:g} is not below Streamlit's server keep-alive "
            f"of {keep_alive:g} s ({where}): Streamlit can close a pooled connection just as a request goes out "
            "on it, and a POST or a file upload then gets 502",
            f"lower it below {keep_alive:g} s (4 is the default)",
        )
    return passed(
        "upstream_keep_alive",
        f"pooled connections idle at most {idle:g} s, below Streamlit's server keep-alive of {keep_alive:g} s "
        f"({where})",
    )


def streamlit_keep_alive_s() -> tuple[float | None, str]:
    """How long the installed Streamlit's server keeps an idle connection open, and what says so (None: unknown)."""
    try:
        dist = importlib.metadata.distribution("streamlit")
    except importlib.metadata.PackageNotFoundError:
        return None, "Streamlit is not installed"
    source = _read(dist, STREAMLIT_SERVER_FILE)
    if "useStarlette" in (_read(dist, STREAMLIT_SERVER_SWITCH) or ""):
        source = None  # uvicorn only on request: Tornado serves by default
    return keep_alive_from(dist.version, source)


def _read(dist: importlib.metadata.Distribution, path: str) -> str | None:
    try:
        return Path(str(dist.locate_file(path))).read_text(encoding="utf-8")
    except OSError:
        return None


def keep_alive_from(streamlit_version: str, server_source: str | None) -> tuple[float | None, str]:
    """Streamlit's keep-alive from its uvicorn server module's text: uvicorn's default unless Streamlit sets one.

    Read from the installed files rather than a running child: no Streamlit import, no server started.
    """
    if server_source is None:
        return None, f"Streamlit {streamlit_version} does not serve with uvicorn"
    if "timeout_keep_alive" in server_source:
        return None, f"Streamlit {streamlit_version} sets uvicorn's timeout_keep_alive itself"
    try:
        import uvicorn  # Streamlit's server, not ours: only its defaults are read, and it may be absent
    except ImportError:
        return None, f"Streamlit {streamlit_version} serves with uvicorn, which is not installed"
    default = inspect.signature(uvicorn.Config).parameters["timeout_keep_alive"].default
    return float(default), f"uvicorn {uvicorn.__version__}'s default, which Streamlit {streamlit_version} keeps"
