"""The runtime: compose a serve plan (gateway, proxy, Streamlit child) and run it, in one process or several."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Loaded on first use: `fluxlit serve` imports runtime modules before it starts Streamlit early, and the unified app
# brings the whole gateway (~1 s of imports) with it.
_LAZY = {"create_unified_app": "fluxlit.runtime.unified", "create_gateway_app": "fluxlit.runtime.unified"}

if TYPE_CHECKING:
    from fluxlit.runtime.unified import create_gateway_app, create_unified_app

__all__ = ["create_gateway_app", "create_unified_app"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
