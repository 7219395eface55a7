"""ApiClient: how Streamlit pages call the app's own API (base URL from FLUXLIT_INTERNAL_API_BASE)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Generator, Mapping
from contextvars import ContextVar
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, TypeAdapter

from fluxlit.config.child_layout import DEFAULT_INTERNAL_API_BASE as DEFAULT_INTERNAL_API_BASE
from fluxlit.config.child_layout import child_layout

REQUEST_ID_HEADER = "X-Request-ID"
AuthHeaderFactory = Callable[[], Mapping[str, str]]
ModelT = TypeVar("ModelT")

_current_request_id: ContextVar[str | None] = ContextVar("fluxlit_request_id", default=None)

# In-process transports registered by FluxLitTestClient.streamlit(), keyed by origin ("http://host:port"):
# AppTest runs pages in this process, so their calls can reach the gateway without a socket.
_test_transports: dict[str, httpx.Client] = {}
_shared_lock = threading.Lock()
_shared_http: httpx.Client | None = None


class ApiError(Exception):
    """The API answered with an error status to a client made with ``raise_for_status=True``; carries the
    status code and the body text."""

    def __init__(self, method: str, url: str, status_code: int, body: str) -> None:
        super().__init__(f"{method} {url} answered {status_code}: {body[:200]}")
        self.status_code = status_code
        self.body = body


def current_request_id() -> str | None:
    """The request id ApiClient sends as X-Request-ID in this context, if one is known."""
    return _current_request_id.get()


@contextlib.contextmanager
def request_id_scope(request_id: str | None) -> Generator[None, None, None]:
    """Within the block, ApiClient calls carry ``request_id`` (the bundled entrypoint sets it per page run)."""
    token = _current_request_id.set(request_id)
    try:
        yield
    finally:
        _current_request_id.reset(token)


def register_test_transport(base_url: str, http: httpx.Client) -> Callable[[], None]:
    """Route every ApiClient call to ``base_url``'s origin through ``http``; returns the undo function."""
    origin = _origin(base_url)
    _test_transports[origin] = http

    def unregister() -> None:
        if _test_transports.get(origin) is http:
            del _test_transports[origin]

    return unregister


def shared_http_client() -> httpx.Client:
    """One connection pool for every page session in this process (sessions have no close hook)."""
    global _shared_http
    with _shared_lock:
        if _shared_http is None:
            _shared_http = httpx.Client(timeout=30.0)
        return _shared_http


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class ApiClient:
    """A small synchronous client for the app's API; paths are relative to the API prefix (``get("/users")``).

    Every call goes through :meth:`request`, so monkeypatching ``ApiClient.request`` intercepts them all.
    Like httpx (and fluxlit 0.13), a call returns the response whatever its status; ``raise_for_status=True``
    makes every error status raise :class:`ApiError` instead. ``http_client`` is borrowed (never closed
    here); without it the client opens and owns its own pool.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        default_headers: Mapping[str, str] | None = None,
        auth_header_factory: AuthHeaderFactory | None = None,
        propagate_request_id: bool = True,
        http_client: httpx.Client | None = None,
        raise_for_status: bool = False,
    ) -> None:
        self.base_url = (base_url or child_layout().internal_api_base).rstrip("/")
        self.timeout = timeout
        self.default_headers = dict(default_headers or {})
        self.auth_header_factory = auth_header_factory
        self.propagate_request_id = propagate_request_id
        self.raise_for_status = raise_for_status
        self._borrowed = http_client
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
            auth_header_factory = _bearer(bearer_token)
        return cls(auth_header_factory=auth_header_factory, **options)

    def with_bearer(self, token: str) -> ApiClient:
        """A client with the same base URL, options and connection pool that sends ``Authorization: Bearer``.

        Usable as a context manager (``with client.with_bearer(tok) as api:``); leaving the block never
        closes the pool it shares with this client.
        """
        return ApiClient(
            self.base_url,
            timeout=self.timeout,
            default_headers=self.default_headers,
            auth_header_factory=_bearer(token),
            propagate_request_id=self.propagate_request_id,
            http_client=self._pool(),
            raise_for_status=self.raise_for_status,
        )

    def url(self, path: str) -> str:
        if "://" in path or path.startswith("//"):
            raise ValueError(f"ApiClient paths are relative to the API prefix, got the absolute URL {path!r}")
        return self.base_url + ("" if path.startswith("/") else "/") + path

    def headers_for_call(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Defaults, then the auth factory, then the call's own headers, then the request id if none was given."""
        headers = {**self.default_headers}
        if self.auth_header_factory is not None:
            headers.update(self.auth_header_factory())
        headers.update(extra or {})
        request_id = current_request_id()
        if self.propagate_request_id and request_id and not any(k.lower() == "x-request-id" for k in headers):
            headers[REQUEST_ID_HEADER] = request_id
        return headers

    def request(self, method: str, path: str, *, raise_for_status: bool | None = None, **kwargs: Any) -> httpx.Response:
        """Send one request and return its response, whatever the status.

        An error status raises :class:`ApiError` when ``raise_for_status`` (this call's, else the client's) is
        true; the other keyword arguments are httpx's (``json=``, ``params=``, ``headers=``, ``timeout=``...).
        """
        headers = self.headers_for_call(kwargs.pop("headers", None))
        url = self.url(path)
        response = self._pool().request(method, url, headers=headers, **kwargs)
        raising = self.raise_for_status if raise_for_status is None else raise_for_status
        if raising and response.is_error:
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

    def get_model(self, path: str, response_model: type[ModelT], **kwargs: Any) -> ModelT:
        """GET ``path`` and validate its JSON as ``response_model`` (a pydantic model, or any type pydantic
        validates, such as ``list[Item]``).

        An error status raises ``httpx.HTTPStatusError`` (:class:`ApiError` on a ``raise_for_status=True``
        client); a body of the wrong shape raises ``pydantic.ValidationError``.
        """
        response = self.get(path, **kwargs)
        response.raise_for_status()
        return TypeAdapter(response_model).validate_json(response.content)

    def post_model(
        self,
        path: str,
        response_model: type[ModelT],
        *,
        body: BaseModel | Mapping[str, Any] | None = None,
        json: Any = None,
        **kwargs: Any,
    ) -> ModelT:
        """POST ``body`` (a pydantic model, dumped in JSON mode, or a mapping) or ``json`` to ``path``, and
        validate the answer as ``response_model``; errors as in :meth:`get_model`."""
        if body is not None and json is not None:
            raise TypeError(f"post_model({path!r}) got both body= and json=: pass one of them")
        if isinstance(body, BaseModel):
            json = body.model_dump(mode="json")
        elif body is not None:
            json = dict(body)
        response = self.post(path, json=json, **kwargs)
        response.raise_for_status()
        return TypeAdapter(response_model).validate_json(response.content)

    def _pool(self) -> httpx.Client:
        # A registered test transport wins: its origin is a reserved .invalid host no socket could reach.
        test_http = _test_transports.get(_origin(self.base_url))
        if test_http is not None:
            return test_http
        if self._borrowed is not None:
            return self._borrowed
        if self._http is None:
            self._http = httpx.Client(timeout=self.timeout)
        return self._http

    def close(self) -> None:
        """Close the pool this client opened itself; a borrowed pool stays open for its owner."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _bearer(token: str) -> AuthHeaderFactory:
    def auth_header_factory() -> Mapping[str, str]:
        return {"Authorization": f"Bearer {token}"}

    return auth_header_factory
