"""What the gateway knows about the Streamlit upstream: a snapshot the supervisor publishes, read per request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

READY = "ready"
NOT_CONFIGURED = "not_configured"


@dataclass(frozen=True)
class UpstreamStatus:
    """One immutable view of the upstream; `host`/`port` are set while it can take traffic."""

    state: str
    detail: str = ""
    generation: int = 0
    host: str | None = None
    port: int | None = None
    restarting: bool = False
    retry_after_seconds: int = 2

    @property
    def ready(self) -> bool:
        return self.state == READY


UNCONFIGURED = UpstreamStatus(NOT_CONFIGURED)
UpstreamStatusSource = Callable[[], UpstreamStatus]


def no_upstream() -> UpstreamStatus:
    return UNCONFIGURED
