"""FluxLitTestClient: test an app through the same gateway (prefix, mount, health routes) that serves it."""

from __future__ import annotations

import warnings
from typing import Any

import httpx

with warnings.catch_warnings():
    # Starlette 1.x nudges towards httpx2; httpx is the client this project standardises on.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from starlette.testclient import TestClient

from fluxlit.app import FluxLit
from fluxlit.gateway import Gateway, build_gateway
from fluxlit.paths import normalize_mount

_DOCS_OK = {200, 301, 302, 307, 308}


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
        mount = self.root_mount if root_path is None else normalize_mount(root_path, name="root_path", allow_empty=True)
        if not path.startswith("/"):
            path = "/" + path
        return f"{mount}{self.api_prefix}{path}"

    def api_request(self, method: str, path: str, *, root_path: str | None = None, **kwargs: Any) -> httpx.Response:
        client = self.api
        if root_path is not None and normalize_mount(root_path, name="root_path", allow_empty=True) != self.root_mount:
            client = self.with_root_path(root_path).api
        response: httpx.Response = client.request(method, self.api_url(path, root_path=root_path), **kwargs)
        return response

    def api_get(self, path: str, *, root_path: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.api_request("GET", path, root_path=root_path, **kwargs)

    def api_post(self, path: str, *, root_path: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.api_request("POST", path, root_path=root_path, **kwargs)

    def api_put(self, path: str, *, root_path: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.api_request("PUT", path, root_path=root_path, **kwargs)

    def api_patch(self, path: str, *, root_path: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.api_request("PATCH", path, root_path=root_path, **kwargs)

    def api_delete(self, path: str, *, root_path: str | None = None, **kwargs: Any) -> httpx.Response:
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
