"""ApiClient: how Streamlit pages call the app's own API (base URL from FLUXLIT_INTERNAL_API_BASE)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import httpx

DEFAULT_INTERNAL_API_BASE = "http://127.0.0.1:8000/api"
AuthHeaderFactory = Callable[[], Mapping[str, str]]


class ApiError(Exception):
    """The API answered with an error status; carries the status code and the body text."""

    def __init__(self, method: str, url: str, status_code: int, body: str) -> None:
        super().__init__(f"{method} {url} answered {status_code}: {body[:200]}")
        self.status_code = status_code
        self.body = body


class ApiClient:
    """A small synchronous client for the app's API; paths are relative to the API prefix (``get("/users")``).

    Every call goes through :meth:`request`, so monkeypatching ``ApiClient.request`` intercepts them all.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        default_headers: Mapping[str, str] | None = None,
        auth_header_factory: AuthHeaderFactory | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("FLUXLIT_INTERNAL_API_BASE") or DEFAULT_INTERNAL_API_BASE).rstrip(
            "/"
        )
        self.timeout = timeout
        self.default_headers = dict(default_headers or {})
        self.auth_header_factory = auth_header_factory
        self._http: httpx.Client | None = None

    @classmethod
    def for_fluxlit(
        cls,
        *,
        bearer_token: str | None = None,
        auth_header_factory: AuthHeaderFactory | None = None,
        **options: Any,
    ) -> ApiClient:
        """A client for this app's API, optionally authenticated with a bearer token or a header factory."""
        if bearer_token is not None and auth_header_factory is not None:
            raise ValueError("pass bearer_token or auth_header_factory, not both")
        if bearer_token is not None:
            token = bearer_token

            def auth_header_factory() -> Mapping[str, str]:
                return {"Authorization": f"Bearer {token}"}

        return cls(auth_header_factory=auth_header_factory, **options)

    def with_bearer(self, token: str) -> ApiClient:
        """A client with the same base URL and options that sends ``Authorization: Bearer <token>``."""
        return ApiClient(
            self.base_url,
            timeout=self.timeout,
            default_headers=self.default_headers,
            auth_header_factory=lambda: {"Authorization": f"Bearer {token}"},
        )

    def url(self, path: str) -> str:
        if "://" in path or path.startswith("//"):
            raise ValueError(f"ApiClient paths are relative to the API prefix, got the absolute URL {path!r}")
        return self.base_url + ("" if path.startswith("/") else "/") + path

    def request(self, method: str, path: str, *, raise_for_status: bool = True, **kwargs: Any) -> httpx.Response:
        """Send one request; an error status raises :class:`ApiError` unless ``raise_for_status=False``."""
        headers = {**self.default_headers}
        if self.auth_header_factory is not None:
            headers.update(self.auth_header_factory())
        headers.update(kwargs.pop("headers", None) or {})
        if self._http is None:
            self._http = httpx.Client(timeout=self.timeout)
        url = self.url(path)
        response = self._http.request(method, url, headers=headers, **kwargs)
        if raise_for_status and response.is_error:
            raise ApiError(method, url, response.status_code, response.text)
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
