"""Deep links: query parameters in pages and public URLs for links (``match_nav_page`` lives in navigation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from fluxlit.config.child_layout import child_layout
from fluxlit.config.paths import DEFAULT_API_PREFIX, normalize_mount
from fluxlit.navigation import NavMatch as NavMatch
from fluxlit.navigation import NavPage as NavPage
from fluxlit.navigation import match_nav_page as match_nav_page
from fluxlit.navigation import public_page_path

if TYPE_CHECKING:
    from fluxlit.app import FluxLit


def query_params(st: Any) -> dict[str, str]:
    """The page's query parameters, one string each (the first value when a key repeats)."""
    qp = st.query_params
    out: dict[str, str] = {}
    for key in qp:
        values = qp.get_all(key) if hasattr(qp, "get_all") else [qp[key]]
        out[key] = str(values[0]) if values else ""
    return out


def _first_header(headers: Mapping[str, str], name: str) -> str | None:
    # Proxies append to these headers: the first entry is what the outermost proxy saw from the browser.
    value = headers.get(name)
    if not value:
        return None
    first = value.split(",")[0].strip()
    return first or None


class PublicUrls:
    """Absolute (or mount-relative) URLs of this app's pages and API, for links in emails, redirects and pages.

    The layout (``fluxlit.config.child_layout``) says where the mount and the API are. The base is, first match
    wins: ``FLUXLIT_PUBLIC_BASE_URL`` (used verbatim when it has a path; an origin
    alone gets the mount appended), else the request's scheme and Host, else no origin at all: a path such as
    ``/apps/demo/settings`` that the browser resolves against the page it is on.

    ``X-Forwarded-Proto``/``-Host``/``-Prefix`` shape links only when the app opts in (``FluxLit(trust_proxy=True)``
    or ``FLUXLIT_TRUST_PROXY=1``); the gateway has already dropped them unless the peer is in
    FLUXLIT_FORWARDED_ALLOW_IPS, so both must agree before a header can steer a link.
    """

    def __init__(self, app: FluxLit, *, trust_proxy: bool | None = None) -> None:
        self._app = app
        self._trust_proxy = trust_proxy

    @property
    def trust_proxy(self) -> bool:
        if self._trust_proxy is not None:
            return self._trust_proxy
        return bool(getattr(self._app, "trust_proxy", False)) or child_layout().trust_proxy

    def api_prefix(self, request: Any = None) -> str:
        known = _published(request, "fluxlit_api_prefix", child_layout().api_prefix)
        if known is not None:
            return known
        settings = self._app.settings
        return settings.api_mount_path if settings is not None else DEFAULT_API_PREFIX

    def mount(self, request: Any = None) -> str:
        """The public mount ("" at the root): a trusted X-Forwarded-Prefix (a strip-prefix proxy), the layout the
        gateway publishes in the scope, FLUXLIT_ROOT_PATH, then the request's root_path.
        """
        if request is not None and self.trust_proxy:
            prefix = _first_header(request.headers, "x-forwarded-prefix")
            if prefix:
                return normalize_mount(prefix, name="X-Forwarded-Prefix", allow_empty=True)
        known = _published(request, "fluxlit_root_path", child_layout().root_path)
        if known is not None:
            return known
        if request is not None:
            # The gateway hands the API root_path = mount + API prefix; strip the prefix to get the mount.
            root = str(request.scope.get("root_path", "")).rstrip("/")
            prefix = self.api_prefix(request)
            if root.endswith(prefix):
                return root[: -len(prefix)]
            return root
        settings = self._app.settings
        return settings.root_path if settings is not None else ""

    def app_base(self, request: Any = None) -> str:
        """Where the Streamlit UI lives, without a trailing slash ("" for a root mount without an origin)."""
        public = child_layout().public_base_url
        if public:
            parts = urlsplit(public)
            if parts.path.strip("/"):
                return public.rstrip("/")
            return f"{parts.scheme}://{parts.netloc}{self.mount(request)}"
        return self._origin(request) + self.mount(request)

    def _origin(self, request: Any) -> str:
        if request is None:
            return ""
        headers = request.headers
        scheme = str(request.scope.get("scheme", "http"))
        host = headers.get("host")
        if self.trust_proxy:
            scheme = _first_header(headers, "x-forwarded-proto") or scheme
            host = _first_header(headers, "x-forwarded-host") or host
        if not host:
            server = request.scope.get("server")
            host = f"{server[0]}:{server[1]}" if server else "localhost"
        return f"{scheme}://{host}"

    def api_base(self, request: Any = None) -> str:
        return self.app_base(request) + self.api_prefix(request)

    def docs_url(self, request: Any = None) -> str:
        return self.api_base(request) + (self._app.api.docs_url or "/docs")

    def redoc_url(self, request: Any = None) -> str:
        return self.api_base(request) + (self._app.api.redoc_url or "/redoc")

    def openapi_url(self, request: Any = None) -> str:
        return self.api_base(request) + (self._app.api.openapi_url or "/openapi.json")

    def health_url(self, request: Any = None) -> str:
        return self.api_base(request) + "/healthz"

    def ready_url(self, request: Any = None) -> str:
        return self.api_base(request) + "/readyz"

    def page_url(self, request: Any, path: str, *, query: Mapping[str, Any] | None = None) -> str:
        """The browser URL of the page registered at ``path`` (Streamlit serves it at its slug), with ``query``."""
        slug = public_page_path(self._app.pages, path)
        url = f"{self.app_base(request)}/{slug}"
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
        return url

    for_page = page_url


def _published(request: Any, scope_key: str, from_layout: str | None) -> str | None:
    """What the gateway published in this request's scope, else what the child's layout says, else None."""
    state = request.scope.get("state") if request is not None else None
    from_scope = state.get(scope_key) if isinstance(state, Mapping) else None
    return from_scope if isinstance(from_scope, str) else from_layout
