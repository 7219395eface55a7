"""Where the proxy sends a request: Streamlit's current address (our child's or an external one's), or why it
cannot take one (503)."""

from __future__ import annotations

from dataclasses import dataclass

from fluxlit_proxy import Unavailable, Upstream

from fluxlit.gateway.upstream_view import UpstreamViewSource


@dataclass(frozen=True)
class StreamlitRoute:
    """The proxy's upstream resolver, asked once per request: ready means an address, anything else a 503 reason."""

    status: UpstreamViewSource
    path_prefix: str

    def __call__(self) -> Upstream | Unavailable:
        current = self.status()
        port = current.port
        if port is not None and (current.ready or current.answers):
            return Upstream(host=current.host or "127.0.0.1", port=port, path_prefix=current.path + self.path_prefix)
        return Unavailable(
            reason=f"Streamlit is {current.state}",
            retry_after_seconds=current.retry_after_seconds,
            restarting=current.restarting,
        )
