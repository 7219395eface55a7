"""Rules between settings that no single parser can check (a mount equal to the API prefix, TLS halves...)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fluxlit.config.parsers import bind_port
from fluxlit.errors import ConfigError

if TYPE_CHECKING:
    from fluxlit.config.settings import Settings


def check_combination(s: Settings) -> None:
    if s.root_path and s.root_path == s.api_mount_path:
        raise ConfigError(f"FLUXLIT_ROOT_PATH={s.root_path!r} equals the API prefix: choose a different mount")
    if s.metrics_path == s.api_mount_path or s.metrics_path.startswith(s.api_mount_path + "/"):
        raise ConfigError(
            f"FLUXLIT_GATEWAY_PROMETHEUS_METRICS_PATH={s.metrics_path!r} lies under the API prefix "
            f"{s.api_mount_path!r}: choose a path outside it, e.g. '/__fluxlit/metrics'"
        )
    if s.metrics_bind:
        _check_metrics_bind(s)
    if bool(s.certfile) != bool(s.keyfile):
        raise ConfigError(
            "TLS needs both --certfile and --keyfile (FLUXLIT_CERTFILE / FLUXLIT_KEYFILE): one is missing"
        )
    if s.restart_backoff_initial_s > s.restart_backoff_max_s:
        raise ConfigError(
            f"FLUXLIT_RESTART_BACKOFF_INITIAL_S={s.restart_backoff_initial_s} is larger than "
            f"FLUXLIT_RESTART_BACKOFF_MAX_S={s.restart_backoff_max_s}: lower the first or raise the second"
        )


def _check_metrics_bind(s: Settings) -> None:
    where = f"FLUXLIT_GATEWAY_PROMETHEUS_METRICS_BIND={s.metrics_bind!r}"
    if not s.metrics:
        raise ConfigError(f"{where} is set but metrics are off (--no-metrics): drop one of them")
    public = [bind_port(b) for b in s.binds if not b.startswith("unix:")] if s.binds else [s.port]
    if bind_port(s.metrics_bind) in public:
        raise ConfigError(f"{where} uses the public port {bind_port(s.metrics_bind)}: choose another, e.g. 9100")
