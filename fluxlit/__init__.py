"""FluxLit: a FastAPI app and a Streamlit UI on one port, with a supervised Streamlit child."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names load on first use: `fluxlit serve` must install its signal handlers before FastAPI,
# Starlette and httpx are imported, and the gateway process should not pay for what it never touches.
_LAZY = {
    "FluxLit": "fluxlit.app",
    "PageRecord": "fluxlit.app",
    "Settings": "fluxlit.settings",
    "FluxLitTestClient": "fluxlit.testing",
    "streamlit_main_path": "fluxlit.streamlit_entry",
}

if TYPE_CHECKING:
    from fluxlit.app import FluxLit, PageRecord
    from fluxlit.settings import Settings
    from fluxlit.streamlit_entry import streamlit_main_path
    from fluxlit.testing import FluxLitTestClient

__all__ = ["FluxLit", "FluxLitTestClient", "PageRecord", "Settings", "__version__", "streamlit_main_path"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fluxlit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
