"""The gateway: one plain ASGI callable that routes each request to the API, an internal endpoint or the proxy."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import quote

from fluxlit.app import FluxLit
from fluxlit.asgi_types import ASGIApp, Message, Receive, Scope, Send, send_json, send_text
from fluxlit.config.forwarded import (
    FORWARDED_HEADERS,
    Network,
    forwarded_client,
    forwarded_scheme,
    is_trusted,
    parse_trusted,
)
from fluxlit.config.parsers import bind_port
from fluxlit.config.paths import DEFAULT_API_PREFIX, DOCS_PATHS, is_under, normalize_mount, strip_mount
from fluxlit.config.settings import DEFAULTS, Settings
from fluxlit.gateway.body_deadline import BodyDeadline, BodyRate
from fluxlit.gateway.external_upstream import external_upstream_from_env, unpooled_proxy
from fluxlit.gateway.internal_access import InternalAccess, internal_access_for
from fluxlit.gateway.refusals import Refusal, RequestLimits, target_refusal, version_refusal
from fluxlit.gateway.request_id import REQUEST_ID_HEADER, pick_request_id
from fluxlit.gateway.upstream_view import UpstreamView, UpstreamViewSource, no_upstream
from fluxlit.health import HEALTH_PATH, LIVE_BODY, NOT_CONFIGURED_BODY, READY_PATH, user_route_matches
from fluxlit.observability.access import AccessObserver

NO_UPSTREAM_RETRY_AFTER = b"5"
REPLICA_HEADER = b"x-fluxlit-replica"
DEFAULT_BODY_RATE = BodyRate(DEFAULTS.body_min_rate_bytes_s, DEFAULTS.body_min_rate_window_s)
DEFAULT_LIMITS = RequestLimits(DEFAULTS.max_url_bytes, DEFAULTS.max_header_bytes, DEFAULTS.allow_encoded_slashes)
LOOPBACK_ONLY = InternalAccess()


@dataclass(frozen=True)
class GatewayRoutes:
    """The path layout of one gateway, normalised (see fluxlit.config.paths)."""

    api_prefix: str = DEFAULT_API_PREFIX
    root_path: str = ""
    internal: Mapping[str, ASGIApp] = field(default_factory=dict)
    trusted_proxies: tuple[Network, ...] = ()
    replica_id: str = ""


class Gateway:
    """Dispatches on the path below the public mount; docs/architecture.md, "Request path"."""

    def __init__(
        self,
        api: ASGIApp,
        routes: GatewayRoutes,
        *,
        upstream_status: UpstreamViewSource = no_upstream,
        upstream_refresh: Callable[[], Awaitable[None]] | None = None,
        proxy: ASGIApp | None = None,
        observer: AccessObserver | None = None,
        body_read_timeout_s: float = DEFAULTS.body_read_timeout_s,
        body_min_rate: BodyRate | None = DEFAULT_BODY_RATE,
        limits: RequestLimits = DEFAULT_LIMITS,
        internal_access: InternalAccess = LOOPBACK_ONLY,
    ) -> None:
        """`body_min_rate` None lets a body arrive as slowly as each read's deadline allows; `internal_access`
        says who may read the `routes.internal` endpoints (loopback only by default); `upstream_refresh`, when
        given, is awaited before readiness and proxied requests read `upstream_status` (an external upstream)."""
        self.api = api
        self.body_read_timeout_s = body_read_timeout_s
        self.body_min_rate = body_min_rate
        self.limits = limits
        self.internal_access = internal_access
        self.observer = observer
        self.routes = routes
        self.upstream_status = upstream_status
        self.upstream_refresh = upstream_refresh
        self.proxy = proxy
        self._api_root = routes.root_path + routes.api_prefix
        self._health = self._api_root + HEALTH_PATH
        self._ready = self._api_root + READY_PATH
        self._stopping = False
        self._probe_owners: dict[str, tuple[int, bool]] = {}
        self._trusted_peers: dict[str | None, bool] = {}
        self._replica_header = (REPLICA_HEADER, routes.replica_id.encode("ascii")) if routes.replica_id else None
        # Response headers the gateway owns: an upstream or app copy is replaced, never duplicated.
        self._stamp_names = frozenset({REQUEST_ID_HEADER, REPLICA_HEADER} if routes.replica_id else {REQUEST_ID_HEADER})

    def begin_stopping(self) -> None:
        """Readiness answers 503 from now on (a graceful stop has begun)."""
        self._stopping = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.api(scope, receive, send)
            return
        routes = self.routes
        limits = self.limits
        request_id, has_body = _prepare_headers(
            scope, routes.trusted_proxies, self._trusted_peers, limits.max_header_bytes
        )
        refusal = _refusal(scope, limits)
        if refusal is not None:
            await _refuse(scope, self._stamped(send, request_id, kind), *refusal)
            return
        rel = strip_mount(scope["path"], scope.get("raw_path"), routes.root_path)
        route = rel.route  # decisions read the raw path's segments; handlers get the decoded path too
        access = self.internal_access
        if access.port is not None and access.on_dedicated_port(scope.get("server")):
            # The internal port serves the internal endpoints and nothing else: no second way into the app.
            if kind == "http" and route in routes.internal and _admits(access, scope):
                await routes.internal[route](scope, receive, self._stamped(send, request_id, kind))
                return
            dispatch, handler = "internal", self._to_not_found
        elif is_under(route, routes.api_prefix):
            dispatch, handler = "api", self._to_api
        elif kind == "http" and route in routes.internal:
            if access.port is None and _admits(access, scope):
                # Scrapes and other internal endpoints are not traffic: no access line, no request metrics.
                await routes.internal[route](scope, receive, self._stamped(send, request_id, kind))
                return
            dispatch, handler = "internal", self._to_not_found  # a probe of it is traffic, and logged
        elif kind == "http" and route in DOCS_PATHS and scope["method"] in ("GET", "HEAD"):
            dispatch, handler = "internal", self._to_docs
        else:
            dispatch, handler = "proxy", self._to_proxy
        # Only a request that declares a body pays for the deadline (an object, and a timer per body read).
        deadline = None
        if has_body:
            deadline = BodyDeadline(receive, self.body_read_timeout_s, self.body_min_rate)
            receive = deadline.receive
        observer = self.observer
        if observer is None:
            stamped = self._stamped(send, request_id, kind)
            await handler(
                scope, receive, stamped if deadline is None else deadline.guard(stamped), rel.path, rel.raw_path
            )
            return

        async def call(observed_send: Send) -> None:
            stamped = self._stamped(observed_send, request_id, kind)
            await handler(
                scope, receive, stamped if deadline is None else deadline.guard(stamped), rel.path, rel.raw_path
            )

        await observer.observe(dispatch, scope, request_id, call, send)

    def _stamped(self, send: Send, request_id: str, kind: str) -> Send:
        headers = [(REQUEST_ID_HEADER, request_id.encode("ascii"))]
        if self._replica_header is not None:
            headers.append(self._replica_header)
        return _with_response_headers(send, headers, self._stamp_names, kind)

    async def _to_docs(self, scope: Scope, receive: Receive, send: Send, path: str, raw_path: bytes) -> None:
        await _redirect_to_api(scope, send, self._api_root + path)

    async def _to_not_found(self, scope: Scope, receive: Receive, send: Send, path: str, raw_path: bytes) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "not found"})
            return
        await send_text(send, 404, "Not Found\n")

    async def _to_api(self, scope: Scope, receive: Receive, send: Send, path: str, raw_path: bytes) -> None:
        full = self.routes.root_path + path
        # Starlette strips root_path from path itself, so the API sees the full public path and the
        # mount + prefix as root_path: routes whose own path starts with the prefix still match.
        api_scope = dict(scope)
        api_scope["path"] = full
        api_scope["raw_path"] = self.routes.root_path.encode("ascii") + raw_path
        api_scope["root_path"] = self._api_root
        if (
            (full == self._health or full == self._ready)
            and scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and not self._app_routes_probe(full, api_scope)
        ):
            if full == self._health:
                await send_json(send, 200, LIVE_BODY)
            else:
                await self._readiness(send)
            return
        # root_path alone cannot tell the mount from the API prefix; app.urls needs both.
        state = api_scope["state"]
        state["fluxlit_root_path"] = self.routes.root_path
        state["fluxlit_api_prefix"] = self.routes.api_prefix
        forwarded_for = scope.get("state", {}).get("forwarded_client")
        if forwarded_for is not None:
            api_scope["client"] = (forwarded_for, 0)
        await self.api(api_scope, receive, send)

    def _app_routes_probe(self, full: str, api_scope: Scope) -> bool:
        """Whether the app has its own route for this probe, which then wins over ours (fluxlit/health.py).

        Matching every route costs ~1 us a route, so the answer is kept until the app's route count changes:
        routes added after the gateway was built are still seen."""
        routes = getattr(self.api, "routes", None)
        count = len(routes) if isinstance(routes, list) else -1
        known = self._probe_owners.get(full)
        if known is None or known[0] != count:
            known = (count, user_route_matches(self.api, api_scope))
            self._probe_owners[full] = known
        return known[1]

    async def _readiness(self, send: Send) -> None:
        if self._stopping:
            await send_json(send, 503, {"status": "not_ready", "streamlit": "stopping"}, [(b"retry-after", b"5")])
            return
        if self.upstream_refresh is not None:
            await self.upstream_refresh()
        status = self.upstream_status()
        if status.state == "not_configured":
            await send_json(send, 200, NOT_CONFIGURED_BODY)
        elif status.ready:
            await send_json(send, 200, {"status": "ready", "streamlit": "ok", "generation": status.generation})
        else:
            await send_json(
                send,
                503,
                _not_ready_payload(status),
                [(b"retry-after", str(status.retry_after_seconds).encode())],
            )

    async def _to_proxy(self, scope: Scope, receive: Receive, send: Send, path: str, raw_path: bytes) -> None:
        if self.proxy is None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1013, "reason": "no Streamlit upstream"})
                return
            await send_text(
                send,
                503,
                "FluxLit: no Streamlit upstream is configured for this gateway.\n",
                [(b"retry-after", NO_UPSTREAM_RETRY_AFTER)],
            )
            return
        if self.upstream_refresh is not None:
            await self.upstream_refresh()
        proxy_scope = dict(scope)
        proxy_scope["path"] = path
        proxy_scope["raw_path"] = raw_path
        proxy_scope["root_path"] = self.routes.root_path
        await self.proxy(proxy_scope, receive, send)


def _not_ready_payload(status: UpstreamView) -> dict[str, object]:
    payload: dict[str, object] = {"status": "not_ready", "streamlit": status.state}
    if status.detail:
        payload["detail"] = status.detail
    return payload


def _admits(access: InternalAccess, scope: Scope) -> bool:
    state = scope["state"]
    return access.admits(state["fluxlit_peer"], state.get("forwarded_client"))


def _prepare_headers(
    scope: Scope, trusted: tuple[Network, ...], trusted_peers: dict[str | None, bool], max_header_bytes: int
) -> tuple[str, bool]:
    """One pass over the request headers: pick the request id, keep X-Forwarded-* only from trusted peers,
    measure the header block, and tell whether a body may follow (returned with the request id).

    The block is measured as on the wire, `name: value` and CRLF per field, whatever chunks it arrived in:
    h11 bounds only a head still incomplete after a read (h11 issue 182), so its limit is set above ours.

    A trusted peer's X-Forwarded-For/Proto set the client and scheme the API sees; from anyone else those
    headers are dropped so neither the API nor Streamlit can be fooled by them. ``trusted_peers`` remembers the
    verdict per peer address for ``trusted`` (a few peers send nearly every request).
    """
    client = scope.get("client")
    peer = client[0] if client else None
    trust = trusted_peers.get(peer)
    if trust is None:
        trust = bool(trusted) and is_trusted(peer, trusted)
        if len(trusted_peers) < MAX_REMEMBERED_PEERS:
            trusted_peers[peer] = trust
    inbound = None
    xff = proto = None
    kept = []
    framing = 0
    inbound_headers = scope["headers"]
    header_bytes = 4 * len(inbound_headers)
    for name, value in inbound_headers:
        header_bytes += len(name) + len(value)
        if name == b"content-length":
            framing |= _HAS_LENGTH if value == b"0" else _HAS_LENGTH | _HAS_BODY
        elif name == b"transfer-encoding":
            framing |= _HAS_CHUNKED | _HAS_BODY
        if name == REQUEST_ID_HEADER:
            inbound = value if inbound is None else inbound
            continue
        if name in FORWARDED_HEADERS:
            if not trust:
                continue
            if name == b"x-forwarded-for":
                xff = value if xff is None else xff + b"," + value
            elif name == b"x-forwarded-proto":
                proto = value
        kept.append((name, value))
    request_id = pick_request_id(inbound)
    kept.append((REQUEST_ID_HEADER, request_id.encode("ascii")))
    scope["headers"] = kept
    state = scope.setdefault("state", {})
    state["request_id"] = request_id
    state["fluxlit_peer"] = peer
    version = scope.get("http_version", "1.1")
    refusal = None if version in _LENGTH_FRAMED_VERSIONS else version_refusal(version)
    if refusal is not None:  # a version we do not speak: nothing else about the request can be trusted
        state["fluxlit_refusal"] = refusal
    elif len(kept) > MAX_HEADER_FIELDS:
        state["fluxlit_refusal"] = (431, "Too many header fields.")
    elif header_bytes > max_header_bytes:
        state["fluxlit_refusal"] = (431, f"The request's header fields exceed {max_header_bytes} bytes in total.")
    elif framing & _HAS_CHUNKED and (framing & _HAS_LENGTH or version == "1.0"):
        # RFC 9112 6.1: ambiguous framing is a smuggling vector; refuse it and close the connection.
        state["fluxlit_refusal"] = (400, "Content-Length with Transfer-Encoding, or chunked HTTP/1.0, is refused.")
    if trust:  # a trusted peer may have no address (a unix socket under '*')
        if xff is not None:
            state["forwarded_client"] = forwarded_client(peer or "", xff.decode("latin-1"), trusted)
        if proto is not None:
            scheme = forwarded_scheme(proto.decode("latin-1"), scope["type"] == "websocket")
            if scheme is not None:
                scope["scheme"] = scheme
    if scope["type"] != "http":
        return request_id, False
    # HTTP/2 and 3 frame bodies themselves: without Content-Length any request may carry one.
    return request_id, bool(framing & _HAS_BODY) or (
        not framing & _HAS_LENGTH and version not in _LENGTH_FRAMED_VERSIONS
    )


MAX_HEADER_FIELDS = 100
MAX_REMEMBERED_PEERS = 4096
_HAS_LENGTH, _HAS_CHUNKED, _HAS_BODY = 1, 2, 4
_LENGTH_FRAMED_VERSIONS = ("1.1", "1.0")


def _refusal(scope: Scope, limits: RequestLimits) -> Refusal | None:
    """Requests refused before routing: a version we do not speak, bad framing or headers (found by
    _prepare_headers), and targets too long or that a proxy in front would route differently (refusals.py)."""
    refusal: Refusal | None = scope["state"].get("fluxlit_refusal")
    return refusal if refusal is not None else target_refusal(scope, limits)


async def _refuse(scope: Scope, send: Send, status: int, text: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": text[:120]})
        return
    await send_text(send, status, text + "\n", [(b"connection", b"close")])


_HTTP_STARTS = ("http.response.start",)
_WEBSOCKET_STARTS = ("websocket.accept", "websocket.http.response.start")


def _with_response_headers(send: Send, extra: list[tuple[bytes, bytes]], names: frozenset[bytes], kind: str) -> Send:
    starts = _HTTP_STARTS if kind == "http" else _WEBSOCKET_STARTS

    async def send_with_headers(message: Message) -> None:
        if message["type"] in starts:
            headers = [h for h in message.get("headers", ()) if h[0].lower() not in names]
            headers.extend(extra)
            message = {**message, "headers": headers}
        await send(message)

    return send_with_headers


async def _redirect_to_api(scope: Scope, send: Send, location: str) -> None:
    target = quote(location)
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    await send_text(send, 307, f"Moved to {target}\n", [(b"location", target.encode("latin-1"))])


def build_gateway(
    app: object,
    settings: Settings | None = None,
    *,
    root_path: str | None = None,
    api_prefix: str | None = None,
    upstream_status: UpstreamViewSource = no_upstream,
    upstream_refresh: Callable[[], Awaitable[None]] | None = None,
    proxy: ASGIApp | None = None,
    internal: Mapping[str, ASGIApp] | None = None,
    observer: AccessObserver | None = None,
) -> Gateway:
    """Compose a gateway for a FluxLit app or a plain ASGI app (served as the API with no pages).

    Layout comes from ``settings`` (else the app's own settings, else defaults); ``root_path``/``api_prefix``
    override them, normalised by the same rules as FLUXLIT_ROOT_PATH / FLUXLIT_API_MOUNT_PATH. Given neither
    an upstream nor a proxy, it fronts the Streamlit that FLUXLIT_STREAMLIT_UPSTREAM_FILE or
    FLUXLIT_STREAMLIT_UPSTREAM names (os.environ, else ``settings``), as the seed's tests expect.
    """
    if isinstance(app, FluxLit):
        api: ASGIApp = app.api
        base = settings or app.settings or Settings()
    elif callable(app):
        api = cast(ASGIApp, app)
        base = settings or Settings()
    else:
        raise TypeError(f"build_gateway needs a FluxLit or an ASGI app, got {type(app).__name__}")
    routes = GatewayRoutes(
        api_prefix=base.api_mount_path
        if api_prefix is None
        else normalize_mount(api_prefix, name="api_prefix", allow_empty=False),
        root_path=base.root_path
        if root_path is None
        else normalize_mount(root_path, name="root_path", allow_empty=True),
        internal=dict(internal or {}),
        trusted_proxies=parse_trusted(base.forwarded_allow_ips),
        replica_id=base.replica_id,
    )
    if upstream_status is no_upstream and proxy is None:
        external = external_upstream_from_env(base, os.environ, routes.root_path)
        if external is not None:
            upstream_status, upstream_refresh = external, external.refresh
            proxy = unpooled_proxy(external, base, routes.root_path)
    metrics_allow = base.metrics_allow
    return Gateway(
        api,
        routes,
        upstream_status=upstream_status,
        upstream_refresh=upstream_refresh,
        proxy=proxy,
        observer=observer,
        body_read_timeout_s=base.body_read_timeout_s,
        body_min_rate=BodyRate(base.body_min_rate_bytes_s, base.body_min_rate_window_s)
        if base.body_min_rate_bytes_s
        else None,
        limits=RequestLimits(
            max_url_bytes=base.max_url_bytes,
            max_header_bytes=base.max_header_bytes,
            allow_encoded_slashes=base.allow_encoded_slashes,
        ),
        internal_access=internal_access_for(
            routes.trusted_proxies,
            allow=parse_trusted(metrics_allow, where="FLUXLIT_GATEWAY_PROMETHEUS_METRICS_ALLOW")
            if metrics_allow
            else None,
            port=bind_port(base.metrics_bind) if base.metrics_bind else None,
        ),
    )
