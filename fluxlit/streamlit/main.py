"""Bundled Streamlit entrypoint: imports FLUXLIT_APP and renders its registered pages with st.navigation."""

from __future__ import annotations

import os
import sys
from typing import Any

import streamlit as st


def _load_app() -> Any:
    target = os.environ.get("FLUXLIT_APP", "")
    if not target:
        st.error("FLUXLIT_APP is not set: start this script through `fluxlit serve app:app`.")
        st.stop()
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    from fluxlit.errors import TargetError
    from fluxlit.targets import load_target

    try:
        return load_target(target)
    except TargetError as error:
        st.error(f"FluxLit could not load the app: {error}")
        st.stop()


def _client() -> Any:
    from fluxlit.client import ApiClient

    client = st.session_state.get("_fluxlit_api_client")
    if client is None:
        client = ApiClient()
        st.session_state["_fluxlit_api_client"] = client
    return client


def _render(handler: Any) -> Any:
    def run_page() -> None:
        handler(st, _client())

    run_page.__name__ = getattr(handler, "__name__", "page")
    return run_page


def main() -> None:
    loaded = _load_app()
    app = loaded.app
    st.set_page_config(page_title=loaded.title, **(app.streamlit_page_config if app else {}))
    pages = app.pages if app else ()
    if not pages:
        st.title(loaded.title)
        prefix = os.environ.get("FLUXLIT_API_PREFIX", "/api")
        st.write(f"This app has no pages yet. Its API lives under `{prefix}` (docs at `{prefix}/docs`).")
        return
    nav = st.navigation(
        [
            st.Page(_render(p.handler), title=p.title, icon=p.icon, url_path=p.slug or None, default=i == 0)
            for i, p in enumerate(pages)
        ]
    )
    nav.run()


main()
