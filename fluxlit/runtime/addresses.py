"""Where a run listens and where its Streamlit pages reach the API: the public binds and the internal API base."""

from __future__ import annotations

from fluxlit_supervisor import pick_free_port

from fluxlit.config.settings import Settings
from fluxlit.config.sources import replace
from fluxlit.errors import ConfigError


def with_concrete_port(settings: Settings, chosen: int | None = None) -> Settings:
    """Port 0 means "any": pick one now (or keep the one `chosen` earlier) so the child's API base can name it."""
    if settings.binds or settings.port != 0:
        return settings
    return replace(settings, port=chosen or pick_free_port(settings.host))


def public_binds(settings: Settings) -> tuple[str, ...]:
    if settings.binds:
        return settings.binds
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return (f"{host}:{settings.port}",)


def internal_api_base(settings: Settings, loopback_port: int | None = None) -> str:
    """Where pages reach the API: a private plain-HTTP loopback port under TLS, else the first TCP bind."""
    if loopback_port is not None:
        return f"http://127.0.0.1:{loopback_port}{settings.root_path}{settings.api_mount_path}"
    for bind in public_binds(settings):
        if bind.startswith("unix:"):
            continue
        host, _, port = bind.rpartition(":")
        host = host.strip("[]")
        if host in ("0.0.0.0", "", "*"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if settings.certfile else "http"
        return f"{scheme}://{shown}:{port}{settings.root_path}{settings.api_mount_path}"
    raise ConfigError(
        "every bind is a unix socket, so Streamlit pages cannot reach the API: "
        "add a TCP bind such as --bind 127.0.0.1:8000"
    )
