"""One script run of the bundled entrypoint: load the app, configure the page, navigate, run the page."""

from __future__ import annotations

import os
import sys
import threading
from types import ModuleType
from typing import Any

from fluxlit.client import ApiClient, request_id_scope, shared_http_client
from fluxlit.config.child_layout import child_layout
from fluxlit.config.paths import DEFAULT_API_PREFIX
from fluxlit.deep_links import match_nav_page, query_params
from fluxlit.errors import TargetError
from fluxlit.navigation import nav_entries
from fluxlit.pages.di import call_page, load_page_overrides
from fluxlit.targets import LoadedTarget, load_target, parse_target

CLIENT_KEY = "_fluxlit_api_client"
# Set by fluxlit.testing.select_page: the page path to switch to on the next run (AppTest cannot click links).
SWITCH_KEY = "_fluxlit_switch_to"

_cache_lock = threading.Lock()
_loaded: dict[str, tuple[ModuleType | None, LoadedTarget]] = {}


def load_app(spec: str) -> LoadedTarget:
    """Import the target once per module object: a file target would otherwise re-run (and a factory re-build
    the app, losing its in-process state) on every script run.
    """
    module_name = parse_target(spec).module
    with _cache_lock:
        cached = _loaded.get(spec)
        if cached is not None and cached[0] is not None and sys.modules.get(module_name) is cached[0]:
            return cached[1]
        loaded = load_target(spec)
        _loaded[spec] = (sys.modules.get(module_name), loaded)
        return loaded


def session_client(st: Any) -> ApiClient:
    """The session's ApiClient: created on its first run, sharing the process-wide connection pool."""
    client = st.session_state.get(CLIENT_KEY)
    if not isinstance(client, ApiClient):
        client = ApiClient(http_client=shared_http_client())
        st.session_state[CLIENT_KEY] = client
    return client


def _stop_with_error(st: Any, message: str) -> None:
    st.error(message)
    st.stop()


def run(st: Any) -> None:
    """The whole entrypoint; ``st`` is the streamlit module."""
    layout = child_layout()
    target = layout.app
    if not target:
        _stop_with_error(st, "FLUXLIT_APP is not set: start this script through `fluxlit serve app:app`.")
        return
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        loaded = load_app(target)
    except TargetError as error:
        _stop_with_error(st, f"FluxLit could not load the app: {error}")
        return
    app = loaded.app
    st.set_page_config(**{"page_title": loaded.title, **(app.streamlit_page_config if app else {})})
    if app is None or not app.pages:
        st.title(loaded.title)
        prefix = layout.api_prefix or DEFAULT_API_PREFIX
        st.write(f"This app has no pages yet. Its API lives under `{prefix}` (docs at `{prefix}/docs`).")
        return
    _navigate(st, app)


def _navigate(st: Any, app: Any) -> None:

    overrides = load_page_overrides()
    client = session_client(st)
    # The browser's WebSocket handshake carried the gateway's request id: API calls from this session reuse
    # it, so the access log ties them to the session that made them.
    request_id = st.context.headers.get("X-Request-ID")

    def page_runner(record: Any) -> Any:
        def run_page() -> None:
            with request_id_scope(request_id):
                call_page(record.handler, st, client, app=app, overrides=overrides)

        run_page.__name__ = getattr(record.handler, "__name__", "page")
        return run_page

    entries = nav_entries(app.pages, query_params(st))
    st_pages = {
        e.record.path: st.Page(
            page_runner(e.record), title=e.record.title, icon=e.record.icon, url_path=e.url_path, default=e.default
        )
        for e in entries
    }
    nav = st.navigation(list(st_pages.values()))
    switch_to = st.session_state.pop(SWITCH_KEY, None)
    if switch_to is not None:
        match = match_nav_page({"page": switch_to}, app.pages)
        if match is None:
            known = ", ".join(repr(p.title) for p in app.pages)
            raise ValueError(f"no page matches {switch_to!r}: pass a title, path or slug of one of {known}")
        st.switch_page(st_pages[match.path])
    nav.run()
