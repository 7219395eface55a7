"""FluxLitTestClient: test an app through the same gateway (prefix, mount, health routes) that serves it."""

from __future__ import annotations

import importlib.util
import itertools
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

with warnings.catch_warnings():
    # Starlette 1.x nudges towards httpx2; httpx is the client this project standardises on.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from starlette.testclient import TestClient

from fluxlit.app import FluxLit
from fluxlit.config.paths import normalize_mount
from fluxlit.gateway.router import Gateway, build_gateway
from fluxlit.targets import parse_target

_DOCS_OK = {200, 301, 302, 307, 308}
_Transport = tuple[str, httpx.Client]  # an origin and the client that answers for it in-process
_test_hosts = itertools.count(1)


class FluxLitTestClient:
    """In-process client for a FluxLit (or plain ASGI) app; no sockets, no Streamlit child.

    ``api_get("/users")`` requests ``{root_mount}{api_prefix}/users`` exactly as a browser would.
    """

    def __init__(self, app: FluxLit | Any, api_prefix: str | None = None, root_mount: str = "") -> None:
        self.app = app
        self.gateway: Gateway = build_gateway(app, root_path=root_mount, api_prefix=api_prefix)
        self.api_prefix = self.gateway.routes.api_prefix
        self.root_mount = self.gateway.routes.root_path
        self.api = TestClient(self.gateway)

    def with_root_path(self, mount: str) -> FluxLitTestClient:
        """A client for the same app served under the public mount ``mount`` (e.g. "/content/42")."""
        return FluxLitTestClient(self.app, api_prefix=self.api_prefix, root_mount=mount)

    def api_url(self, path: str, *, root_path: str | None = None) -> str:
        """The public URL of an API path: ``{mount}{api_prefix}{path}``."""
        mount = self.root_mount if root_path is None else normalize_mount(root_path, name="root_path", allow_empty=True)
        if not path.startswith("/"):
            path = "/" + path
        return f"{mount}{self.api_prefix}{path}"

    def api_request(self, method: str, path: str, *, root_path: str | None = None, **kwargs: Any) -> httpx.Response:
        """Send ``method`` to an API path through the gateway; ``root_path`` picks a one-off mount."""
        client = self.api
        if root_path is not None and normalize_mount(root_path, name="root_path", allow_empty=True) != self.root_mount:
            client = self.with_root_path(root_path).api
        response: httpx.Response = client.request(method, self.api_url(path, root_path=root_path), **kwargs)
        return response

    def api_get(self, path: str, *, root_path: str | None = None, **kwargs: Any) -> httpx.Response:
        """GET an API path (relative to the API prefix) through the gateway."""
        return self.api_request("GET", path, root_path=root_path, **kwargs)

    def api_post(self, path: str, *, root_path: str | None = None, **kwargs: Any) -> httpx.Response:
        """POST to an API path (relative to the API prefix) through the gateway."""
        return self.api_request("POST", path, root_path=root_path, **kwargs)

    def api_put(self, path: str, *, root_path: str | None = None, **kwargs: Any) -> httpx.Response:
        """PUT to an API path (relative to the API prefix) through the gateway."""
        return self.api_request("PUT", path, root_path=root_path, **kwargs)

    def api_patch(self, path: str, *, root_path: str | None = None, **kwargs: Any) -> httpx.Response:
        """PATCH an API path (relative to the API prefix) through the gateway."""
        return self.api_request("PATCH", path, root_path=root_path, **kwargs)

    def api_delete(self, path: str, *, root_path: str | None = None, **kwargs: Any) -> httpx.Response:
        """DELETE an API path (relative to the API prefix) through the gateway."""
        return self.api_request("DELETE", path, root_path=root_path, **kwargs)

    def openapi(self, *, root_path: str | None = None) -> dict[str, Any]:
        """The app's OpenAPI document, fetched through the gateway."""
        response = self.api_get("/openapi.json", root_path=root_path)
        if response.status_code != 200:
            raise AssertionError(
                f"GET {self.api_url('/openapi.json', root_path=root_path)} answered {response.status_code}, "
                "expected 200: is openapi_url disabled in fastapi_kwargs?"
            )
        document: dict[str, Any] = response.json()
        return document

    def assert_docs_available(self, *, root_path: str | None = None) -> None:
        """Fail with a clear message unless openapi.json is a valid OpenAPI document and /docs is served."""
        document = self.openapi(root_path=root_path)
        missing = [key for key in ("openapi", "info", "paths") if key not in document]
        if missing or not str(document.get("openapi", "")).startswith("3."):
            raise AssertionError(
                f"{self.api_url('/openapi.json', root_path=root_path)} is not an OpenAPI 3 document "
                f"(missing {missing or ['a 3.x version']})"
            )
        docs = self.api_get("/docs", root_path=root_path, follow_redirects=False)
        if docs.status_code not in _DOCS_OK:
            raise AssertionError(
                f"GET {self.api_url('/docs', root_path=root_path)} answered {docs.status_code}; "
                "expected 200 or a redirect: is docs_url disabled in fastapi_kwargs?"
            )

    def streamlit(
        self,
        *,
        target: str,
        internal_api_base: str | None = None,
        extra_sys_path: str | Path | None = None,
        query_params: Mapping[str, Any] | None = None,
        page_overrides: Mapping[str, Any] | None = None,
        default_timeout: float = 10.0,
    ) -> Any:
        """Run the bundled entrypoint for ``target`` in Streamlit's AppTest and return it (already run once).

        Every run of the returned AppTest sees FLUXLIT_APP, FLUXLIT_API_PREFIX, FLUXLIT_ROOT_PATH,
        FLUXLIT_INTERNAL_API_BASE, FLUXLIT_TESTS=1 and, with ``page_overrides``, FLUXLIT_TEST_PAGE_OVERRIDES
        (merged over any value already set); the environment is restored after each run.
        When ``target`` cannot be imported, this client's own app is served under that name. Without
        ``internal_api_base`` the pages' ApiClient reaches this client's gateway in-process (no socket).
        """
        # Streamlit's AppTest costs ~1.5 s to import (python -X importtime): API-only tests never pay it.
        from fluxlit.streamlit.apptest import FluxLitAppTest

        paths = _sys_paths(extra_sys_path)
        spec, modules = _resolve_streamlit_target(target, self.app, paths)
        env, transport = self._page_env(spec, internal_api_base)
        at = FluxLitAppTest(
            env,
            modules=modules,
            sys_paths=paths,
            transport=transport,
            page_overrides=page_overrides,
            default_timeout=default_timeout,
        )
        for key, value in (query_params or {}).items():
            at.query_params[key] = value
        return at.run()

    def _page_env(self, target: str, internal_api_base: str | None) -> tuple[dict[str, str], _Transport | None]:
        """The environment of a page run for ``target``, and the in-process transport to this client's gateway
        (when ``internal_api_base`` is not given)."""
        transport = None
        if internal_api_base is None:
            origin = f"http://fluxlit-test-{next(_test_hosts)}.invalid"
            internal_api_base = origin + self.root_mount + self.api_prefix
            transport = (origin, self.api)
        env = {
            "FLUXLIT_APP": target,
            "FLUXLIT_API_PREFIX": self.api_prefix,
            "FLUXLIT_ROOT_PATH": self.root_mount,
            "FLUXLIT_INTERNAL_API_BASE": internal_api_base,
            "FLUXLIT_TESTS": "1",
        }
        return env, transport

    def select_page(
        self,
        at: Any,
        page: str,
        *,
        target: str | None = None,
        internal_api_base: str | None = None,
        extra_sys_path: str | Path | None = None,
        page_key: str = "page",
        page_overrides: Mapping[str, Any] | None = None,
    ) -> Any:
        """Open ``page`` (title, path or slug) and return the AppTest after that run; see :func:`select_page`.

        ``at=None`` starts a new AppTest of ``target`` on that page. An AppTest made by :meth:`streamlit` keeps
        its app and environment. Any other AppTest of the bundled entrypoint (``AppTest.from_file(
        streamlit_main_path())``) runs with ``target`` and this client's API, as :meth:`streamlit` would.
        """
        if at is None:
            if target is None:
                raise TypeError("select_page(None, ...) needs target= to start a new AppTest")
            return self.streamlit(
                target=target,
                internal_api_base=internal_api_base,
                extra_sys_path=extra_sys_path,
                query_params={page_key: page},
                page_overrides=page_overrides,
            )
        # AppTest brings Streamlit (~1.5 s, python -X importtime): only the tests that use it pay.
        from fluxlit.streamlit.apptest import FluxLitAppTest

        if isinstance(at, FluxLitAppTest) or target is None:
            return select_page(
                at,
                page,
                internal_api_base=internal_api_base,
                extra_sys_path=extra_sys_path,
                page_key=page_key,
                page_overrides=page_overrides,
            )
        paths = _sys_paths(extra_sys_path)
        spec, modules = _resolve_streamlit_target(target, self.app, paths)
        env, transport = self._page_env(spec, internal_api_base)
        return _select_in_plain_apptest(at, page, env, modules, paths, transport, page_overrides)

    @staticmethod
    def assert_no_streamlit_exception(at: Any) -> None:
        """Fail if the last run raised or showed an ``st.error`` box; see :func:`assert_no_streamlit_exception`."""
        assert_no_streamlit_exception(at)


def _sys_paths(extra_sys_path: str | Path | None) -> list[str]:
    return [str(Path(extra_sys_path).resolve())] if extra_sys_path is not None else []


def _resolve_streamlit_target(target: str, app: Any, paths: list[str]) -> tuple[str, dict[str, Any]]:
    """The FLUXLIT_APP value, plus an in-memory module serving ``app`` when the target cannot be found."""
    from fluxlit.streamlit.apptest import synthetic_module  # Streamlit itself, ~0.4 s: only for .streamlit()

    parsed = parse_target(target)
    if parsed.file is not None:
        candidates = [parsed.file] if parsed.file.is_absolute() else [Path(p) / parsed.file for p in ["", *paths]]
        if any(c.is_file() for c in candidates):
            return target, {}
    elif _module_exists(parsed.module, paths):
        return target, {}
    value = (lambda: app) if parsed.call else app
    spec = f"{parsed.module}:{parsed.attr}{'()' if parsed.call else ''}"
    return spec, {parsed.module: synthetic_module(parsed.module, parsed.attr, value)}


def _module_exists(name: str, paths: list[str]) -> bool:
    added = [p for p in paths if p not in sys.path]
    sys.path[:0] = added
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
    finally:
        for p in added:
            sys.path.remove(p)


def select_page(
    at: Any,
    page: str,
    *,
    target: str | None = None,
    internal_api_base: str | None = None,
    extra_sys_path: str | Path | None = None,
    page_key: str = "page",
    page_overrides: Mapping[str, Any] | None = None,
) -> Any:
    """Open ``page`` (title, path or slug) in ``at`` and run it; returns ``at``.

    Before the first run this is the ``?page=`` deep link. After it, the entrypoint switches pages with
    ``st.switch_page`` like a sidebar click, so session_state carries over. On an AppTest made by
    ``FluxLitTestClient.streamlit`` the other options change its later runs too; ``target`` is accepted
    for fluxlit 0.13's signature, as that AppTest already knows its app. Any other AppTest runs this once
    with ``FLUXLIT_APP=target`` (when given), ``FLUXLIT_TESTS=1`` and the options given.
    """
    # AppTest brings Streamlit (~1.5 s, python -X importtime): only the tests that use it pay.
    from fluxlit.streamlit.apptest import FluxLitAppTest

    if not isinstance(at, FluxLitAppTest):
        env = {"FLUXLIT_TESTS": "1"}
        if target is not None:
            env["FLUXLIT_APP"] = target
        if internal_api_base is not None:
            env["FLUXLIT_INTERNAL_API_BASE"] = internal_api_base
        return _select_in_plain_apptest(at, page, env, {}, _sys_paths(extra_sys_path), None, page_overrides)
    if page_overrides is not None:
        at.page_overrides = {**(at.page_overrides or {}), **page_overrides}
    if internal_api_base is not None:
        at.fluxlit_env["FLUXLIT_INTERNAL_API_BASE"] = internal_api_base
    for path in _sys_paths(extra_sys_path):
        if path not in at.fluxlit_sys_paths:
            at.fluxlit_sys_paths.append(path)
    if at.run_count == 0:
        at.query_params[page_key] = page
    else:
        _ask_to_switch(at, page)
    return at.run()


def _ask_to_switch(at: Any, page: str) -> None:
    from fluxlit.streamlit.shell import SWITCH_KEY  # the shell brings Streamlit-side modules: only when used

    at.session_state[SWITCH_KEY] = page


def _select_in_plain_apptest(
    at: Any,
    page: str,
    env: dict[str, str],
    modules: dict[str, Any],
    paths: list[str],
    transport: _Transport | None,
    page_overrides: Mapping[str, Any] | None,
) -> Any:
    """One run of an AppTest FluxLit did not make, switched to ``page``, with FluxLit's test environment."""
    # AppTest brings Streamlit (~1.5 s, python -X importtime): only the tests that use it pay.
    from fluxlit.streamlit.apptest import fluxlit_run, overrides_env

    if page_overrides is not None:
        env = {**env, **overrides_env(page_overrides)}
    # Whether a plain AppTest has run is not public: the switch request works before and after a first run.
    _ask_to_switch(at, page)
    with fluxlit_run(env, modules=modules, sys_paths=paths, transport=transport):
        return at.run()


def apptest_select_page(
    at: Any,
    client: FluxLitTestClient,
    *,
    target: str,
    page: str,
    internal_api_base: str | None = None,
    extra_sys_path: str | Path | None = None,
    page_key: str = "page",
    page_overrides: Mapping[str, Any] | None = None,
) -> Any:
    """fluxlit 0.13's spelling of ``client.select_page(at, page, target=target, ...)``."""
    return client.select_page(
        at,
        page,
        target=target,
        internal_api_base=internal_api_base,
        extra_sys_path=extra_sys_path,
        page_key=page_key,
        page_overrides=page_overrides,
    )


def assert_no_streamlit_exception(at: Any) -> None:
    """Fail if the last AppTest run raised (each message with its traceback) or showed an ``st.error`` box.

    As in fluxlit 0.13, this is the same check as :func:`apptest_assert_no_errors`: an error box is how a
    page reports a failure it caught, and a test that asserts a clean run means both.
    """
    shown = list(at.exception)
    errors = [e.value for e in at.error]
    problems = []
    if shown:
        details = "\n\n".join(f"{e.message}\n" + "\n".join(e.stack_trace) for e in shown)
        problems.append(f"the Streamlit run raised {len(shown)} exception(s):\n{details}")
    if errors:
        problems.append(f"the Streamlit run showed {len(errors)} error(s): {errors}")
    if problems:
        raise AssertionError("\n\n".join(problems))


apptest_assert_no_errors = assert_no_streamlit_exception
