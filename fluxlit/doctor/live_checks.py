"""Doctor checks of a running instance (--url), as a browser reaches it, maybe through a proxy under a sub-path."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from fluxlit.config.paths import DEFAULT_API_PREFIX
from fluxlit.config.settings import DEFAULTS
from fluxlit.doctor.model import Check, CheckFunction, DoctorContext, check_name, failed, not_checked, passed, warned
from fluxlit.doctor.ws_probe import first_ping, websocket_handshake
from fluxlit.gateway.request_id import REQUEST_ID_HEADER

TIMEOUT_S = 5.0
NGINX_WEBSOCKET_FIX = (
    "forward the WebSocket upgrade in the proxy in front; nginx: proxy_http_version 1.1; "
    'proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade"; '
    "(Caddy and Traefik forward it by default)"
)
_SCRIPT_SRC = re.compile(r"""<script\b[^>]*?\bsrc\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
_FLUXLIT_SEEN = "fluxlit_seen"
_ASSET = "asset"


def base_url(ctx: DoctorContext) -> str:
    assert ctx.url is not None
    return ctx.url.rstrip("/")


def path_prefix(ctx: DoctorContext) -> str:
    """The sub-path the instance is published under ('' at the root)."""
    return urlsplit(base_url(ctx)).path


def fetch(ctx: DoctorContext, url: str) -> httpx.Response | str:
    """GET once per run (checks share answers); a network failure comes back as its description."""
    key = "GET " + url
    if key not in ctx.cache:
        try:
            # trust_env=False: the URL names the hop to test, an HTTP(S)_PROXY from the shell must not add one.
            with httpx.Client(timeout=TIMEOUT_S, follow_redirects=True, trust_env=False) as client:
                ctx.cache[key] = client.get(url)
        except httpx.HTTPError as error:
            ctx.cache[key] = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    answer = ctx.cache[key]
    assert isinstance(answer, httpx.Response | str)
    return answer


def _api(ctx: DoctorContext) -> str:
    settings = ctx.settings
    return base_url(ctx) + (settings.api_mount_path if settings is not None else DEFAULT_API_PREFIX)


def _describe(response: httpx.Response) -> str:
    server = response.headers.get("server")
    kind = response.headers.get("content-type", "no content-type").split(";")[0]
    return f"{response.status_code} ({kind}{', server: ' + server if server else ''})"


def check_healthz(ctx: DoctorContext) -> Check:
    """GET {url}/api/healthz answers FluxLit's 200 {"status": "ok"}."""
    url = _api(ctx) + "/healthz"
    answer = fetch(ctx, url)
    if isinstance(answer, str):
        return failed(
            "healthz",
            f"cannot reach {url}: {answer}",
            "start 'fluxlit serve', or correct --url (scheme, host, port and sub-path)",
        )
    body = _json(answer)
    if answer.status_code == 200 and body.get("status") == "ok":
        ctx.cache[_FLUXLIT_SEEN] = True
        return passed("healthz", f"{url} answered 200 {{'status': 'ok'}}")
    if answer.status_code in (502, 503, 504) and REQUEST_ID_HEADER.decode() not in answer.headers:
        return failed(
            "healthz",
            f"{url} answered {_describe(answer)}: the proxy in front cannot reach FluxLit",
            "check the proxy's upstream address and that 'fluxlit serve' runs there",
        )
    if REQUEST_ID_HEADER.decode() in answer.headers:
        return failed(
            "healthz",
            f"{url} answered {_describe(answer)}: FluxLit answered (X-Request-ID), but that path is not its health "
            "endpoint, so the URL's sub-path or the API prefix differs from the server's",
            "use the sub-path FluxLit is published under (its --root-path) in --url, and the server's "
            "FLUXLIT_API_MOUNT_PATH here",
        )
    return failed(
        "healthz",
        f"{url} answered {_describe(answer)}, not FluxLit's 200 {{'status': 'ok'}}: something else answers this URL",
        "point --url at the FluxLit gateway, including the sub-path it is published under; "
        "if its API prefix is not /api, set FLUXLIT_API_MOUNT_PATH here too",
    )


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _require_fluxlit(ctx: DoctorContext, function: CheckFunction) -> Check | None:
    """Later checks only mean something once healthz proved FluxLit answers; else they would mislead."""
    if ctx.cache.get(_FLUXLIT_SEEN):
        return None
    return not_checked(function, "no FluxLit gateway answered healthz")


def _fetch_from_fluxlit(ctx: DoctorContext, function: CheckFunction, url: str) -> httpx.Response | Check:
    """GET url once healthz proved FluxLit answers: the response, or the check's verdict when there is none."""
    skipped = _require_fluxlit(ctx, function)
    if skipped:
        return skipped
    answer = fetch(ctx, url)
    if isinstance(answer, str):
        return failed(check_name(function), f"cannot reach {url}: {answer}", "retry; the server may be stopping")
    return answer


def check_readyz(ctx: DoctorContext) -> Check:
    """GET {url}/api/readyz: 200 once Streamlit is up."""
    url = _api(ctx) + "/readyz"
    answer = _fetch_from_fluxlit(ctx, check_readyz, url)
    if isinstance(answer, Check):
        return answer
    body = _json(answer)
    if answer.status_code == 200:
        return passed("readyz", f"ready (streamlit: {body.get('streamlit')}, generation {body.get('generation', '-')})")
    state = body.get("streamlit")
    detail = f"{url} answered {answer.status_code}: streamlit is {state}" + (
        f" ({body['detail']})" if body.get("detail") else ""
    )
    if state in ("starting", "restarting"):
        return warned("readyz", detail, "wait a few seconds and run doctor again")
    return failed("readyz", detail, "read the server log: lines with logger=supervisor and logger=streamlit say why")


def check_html_shell(ctx: DoctorContext) -> Check:
    """GET {url}/ serves Streamlit's page, whose script URLs stay under the URL's sub-path."""
    url = base_url(ctx) + "/"
    answer = _fetch_from_fluxlit(ctx, check_html_shell, url)
    if isinstance(answer, Check):
        return answer
    if answer.status_code != 200:
        return failed(
            "html_shell",
            f"{url} answered {_describe(answer)}",
            "see readyz and the server log; a 404 behind a proxy means it rewrites the path",
        )
    sources = _SCRIPT_SRC.findall(answer.text)
    if not sources:
        return failed(
            "html_shell",
            f"{url} answered 200 but the page has no <script src>: not Streamlit's shell",
            "check that the app has pages and that the proxy forwards '/' to FluxLit",
        )
    origin = urlsplit(url)
    prefix = path_prefix(ctx)
    local = [urljoin(url, src) for src in sources]
    local = [asset for asset in local if urlsplit(asset).netloc == origin.netloc]
    outside = [asset for asset in local if prefix and not urlsplit(asset).path.startswith(prefix + "/")]
    if outside:
        return failed(
            "html_shell",
            f"the page loads {urlsplit(outside[0]).path}, outside the sub-path {prefix}: browsers will miss it",
            f"serve FluxLit with --root-path {prefix} (FLUXLIT_ROOT_PATH) to match the public sub-path",
        )
    if local:
        ctx.cache[_ASSET] = local[0]
    return passed("html_shell", f"{url} serves the page with {len(sources)} script(s)")


def check_static_asset(ctx: DoctorContext) -> Check:
    """One script the page references downloads through the same URL prefix."""
    skipped = _require_fluxlit(ctx, check_static_asset)
    if skipped:
        return skipped
    asset = ctx.cache.get(_ASSET)
    if not isinstance(asset, str):
        return not_checked(check_static_asset, "the HTML shell check found no same-origin script")
    answer = fetch(ctx, asset)
    if isinstance(answer, str):
        return failed("static_asset", f"cannot fetch {asset}: {answer}", "retry; the server may be stopping")
    if answer.status_code != 200:
        return failed(
            "static_asset",
            f"{asset} answered {_describe(answer)}",
            "the proxy in front must forward the full path under the sub-path unchanged, "
            "and FluxLit's --root-path must equal that sub-path",
        )
    return passed("static_asset", f"{urlsplit(asset).path} answered 200, {len(answer.content)} bytes")


def websocket_url(ctx: DoctorContext) -> str:
    parts = urlsplit(base_url(ctx))
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + "/_stcore/stream", "", ""))


def check_websocket(ctx: DoctorContext) -> Check:
    """A WebSocket handshake to {url}/_stcore/stream (subprotocol 'streamlit') is answered 101."""
    skipped = _require_fluxlit(ctx, check_websocket)
    if skipped:
        return skipped
    url = websocket_url(ctx)
    result = websocket_handshake(url, timeout=TIMEOUT_S)
    if result.status is None:
        return failed(
            "websocket",
            f"{url}: {result.error}",
            NGINX_WEBSOCKET_FIX + "; a proxy that times out idle connections needs proxy_read_timeout raised",
        )
    if result.accepted:
        if result.subprotocol != "streamlit":
            return failed(
                "websocket",
                f"{url} answered 101 without the 'streamlit' subprotocol: a proxy rewrote Sec-WebSocket-Protocol",
                "forward Sec-WebSocket-Protocol unchanged in both directions",
            )
        return passed("websocket", f"{url} answered 101 Switching Protocols (subprotocol streamlit)")
    status = result.status
    if status == 403:
        return failed(
            "websocket",
            f"{url} refused the handshake with 403: an Origin/Host check failed",
            "keep the browser's Host and Origin intact through the proxy (nginx: proxy_set_header Host $host)",
        )
    if status in (502, 503, 504) and REQUEST_ID_HEADER.decode() in result.headers:
        return failed(
            "websocket",
            f"{url} answered {status}: FluxLit could not bridge the session to Streamlit",
            "see readyz and the server log (logger=proxy)",
        )
    if REQUEST_ID_HEADER.decode() in result.headers:
        hop = f"FluxLit answered {status}: the request reached it without 'Upgrade: websocket'"
    else:
        hop = f"the proxy in front answered {status} itself (no X-Request-ID from FluxLit)"
    return failed(
        "websocket",
        f"{url}: {status} instead of 101; {hop}, so the proxy in front drops the Upgrade/Connection headers",
        NGINX_WEBSOCKET_FIX,
    )


# How much longer than the configured interval the keepalive check waits for the first ping.
PING_SLACK_S = 2.0


def check_websocket_keepalive(ctx: DoctorContext) -> Check:
    """Idle browser WebSockets get pings more often than --lb-idle-timeout, so a load balancer keeps them."""
    skipped = _require_fluxlit(ctx, check_websocket_keepalive)
    if skipped:
        return skipped
    name = "websocket_keepalive"
    interval = (ctx.settings or DEFAULTS).ws_ping_interval_s
    idle = ctx.lb_idle_timeout
    suggestion = f"{max(1.0, (idle or 60.0) // 3):g}"
    if not interval:
        return warned(
            name,
            "pings are off here (FLUXLIT_WS_PING_INTERVAL_S=0): a load balancer or proxy that cuts idle "
            "connections (ALB, GKE, Cloud Run, nginx: 60 s) closes idle tabs",
            f"serve with --ws-ping-interval {suggestion}; see the Deployment page for the load balancer settings",
        )
    if idle is None:
        return passed(
            name,
            f"the gateway pings idle browser WebSockets every {interval:g} s (as configured here); "
            "pass --lb-idle-timeout SECONDS to check that against the load balancer in front",
        )
    if interval >= idle:
        return warned(
            name,
            f"the ping interval {interval:g} s is not below the load balancer's idle timeout {idle:g} s: "
            "it will cut idle tabs",
            f"serve with --ws-ping-interval {suggestion} (FLUXLIT_WS_PING_INTERVAL_S), or raise the idle timeout",
        )
    url = websocket_url(ctx)
    wait = min(idle, interval + PING_SLACK_S)
    result = first_ping(url, within=wait, timeout=TIMEOUT_S)
    if result.error:
        return failed(name, f"{url}: {result.error}", "see the websocket check above")
    if result.seconds is None:
        return warned(
            name,
            f"{url} sent no ping within {wait:g} s, though {interval:g} s is configured here: the server runs "
            "with another --ws-ping-interval, or something between here and it answers pings itself",
            "compare 'fluxlit config' on the server; proxies should pass WebSocket frames through untouched",
        )
    return passed(
        name,
        f"{url} pinged after {result.seconds:.1f} s, below the load balancer's idle timeout {idle:g} s",
    )
