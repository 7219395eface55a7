"""FluxLit: a FastAPI app and a Streamlit UI on one port, with a supervised Streamlit child."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names load on first use: `fluxlit serve` must install its signal handlers before FastAPI,
# Starlette and httpx are imported, and the gateway process should not pay for what it never touches.
_LAZY = {
    "FluxLit": "fluxlit.app",
    "PageRecord": "fluxlit.page_records",
    "Settings": "fluxlit.config.settings",
    "FluxlitSettings": "fluxlit.config",
    "FluxLitTestClient": "fluxlit.testing",
    "streamlit_main_path": "fluxlit.streamlit.command",
    "ApiClient": "fluxlit.client",
    "ApiError": "fluxlit.client",
    "Depends": "fluxlit.pages.di",
    "Header": "fluxlit.pages.di",
    "Cookie": "fluxlit.pages.di",
    "Query": "fluxlit.pages.di",
    "match_nav_page": "fluxlit.deep_links",
    "query_params": "fluxlit.deep_links",
    "PublicUrls": "fluxlit.deep_links",
    "SessionStore": "fluxlit.url_session",
    "InMemorySessionStore": "fluxlit.url_session",
    "ensure_url_session": "fluxlit.url_session",
    "hydrate_url_session": "fluxlit.url_session",
    "persist_url_session": "fluxlit.url_session",
    "new_session_id": "fluxlit.url_session",
    "select_page": "fluxlit.testing",
    "assert_no_streamlit_exception": "fluxlit.testing",
    "apptest_assert_no_errors": "fluxlit.testing",
    "apptest_select_page": "fluxlit.testing",
}

if TYPE_CHECKING:
    from fluxlit.app import FluxLit
    from fluxlit.client import ApiClient, ApiError
    from fluxlit.config import FluxlitSettings
    from fluxlit.config.settings import Settings
    from fluxlit.deep_links import PublicUrls, match_nav_page, query_params
    from fluxlit.page_records import PageRecord
    from fluxlit.pages.di import Cookie, Depends, Header, Query
    from fluxlit.streamlit.command import streamlit_main_path
    from fluxlit.testing import (
        FluxLitTestClient,
        apptest_assert_no_errors,
        apptest_select_page,
        assert_no_streamlit_exception,
        select_page,
    )
    from fluxlit.url_session import (
        InMemorySessionStore,
        SessionStore,
        ensure_url_session,
        hydrate_url_session,
        new_session_id,
        persist_url_session,
    )

__all__ = [
    "ApiClient",
    "ApiError",
    "Cookie",
    "Depends",
    "FluxLit",
    "FluxLitTestClient",
    "FluxlitSettings",
    "Header",
    "InMemorySessionStore",
    "PageRecord",
    "PublicUrls",
    "Query",
    "SessionStore",
    "Settings",
    "__version__",
    "apptest_assert_no_errors",
    "apptest_select_page",
    "assert_no_streamlit_exception",
    "ensure_url_session",
    "hydrate_url_session",
    "match_nav_page",
    "new_session_id",
    "persist_url_session",
    "query_params",
    "select_page",
    "streamlit_main_path",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
