"""A generic ASGI reverse proxy to one upstream, on anyio + h11 + wsproto."""

from .app import ReverseProxy
from .config import ProxyConfig, Unavailable, Upstream, UpstreamResolver
from .failures import ResponseAborted
from .hooks import ProxyHooks
from .ws_limits import ReassemblyBudget

__all__ = [
    "ProxyConfig",
    "ProxyHooks",
    "ReassemblyBudget",
    "ResponseAborted",
    "ReverseProxy",
    "Unavailable",
    "Upstream",
    "UpstreamResolver",
]
