"""What the gateway knows about the Streamlit upstream: a snapshot the supervisor publishes, read per request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fluxlit_supervisor import StateHub, UpstreamState

READY = "ready"
NOT_CONFIGURED = "not_configured"
# Retry-After while Streamlit (re)starts: a cold start takes one to two seconds here.
RESTART_RETRY_AFTER_S = 2


@dataclass(frozen=True)
class UpstreamView:
    """One immutable view of the upstream; `host`/`port` are set while it can take traffic."""

    state: str
    detail: str = ""
    generation: int = 0
    host: str | None = None
    port: int | None = None
    restarting: bool = False
    retry_after_seconds: int = 2
    # The path an external upstream is served under (its URL's), put before every proxied path.
    path: str = ""
    # Not ready, yet still sent traffic: an external upstream that answers, though not 2xx on its root.
    answers: bool = False

    @property
    def ready(self) -> bool:
        return self.state == READY


UNCONFIGURED = UpstreamView(NOT_CONFIGURED)
UpstreamViewSource = Callable[[], UpstreamView]


def no_upstream() -> UpstreamView:
    return UNCONFIGURED


def view_of_state(state: UpstreamState, stopping: bool) -> UpstreamView:
    """The supervisor's snapshot of the child (`UpstreamState`) as the gateway and proxy read it."""
    # A generation that died is being restarted (1012: browsers reconnect); the first one starting is not.
    restarting = state.state == "restarting" or (state.state == "starting" and state.generation > 1)
    return UpstreamView(
        state="stopping" if stopping else state.state,
        detail=state.detail,
        generation=state.generation,
        host=state.host,
        port=state.port,
        restarting=restarting or stopping,
        retry_after_seconds=RESTART_RETRY_AFTER_S,
    )


@dataclass(frozen=True)
class HubStatus:
    """The status of the child this process supervises, read from its hub (a worker reads the state file instead)."""

    hub: StateHub

    def __call__(self) -> UpstreamView:
        return view_of_state(self.hub.current, self.hub.stopping)

    def generation(self) -> int:
        return self.hub.current.generation
