"""Who may read the metrics endpoint: loopback and trusted peers by default, an explicit list, or its own port."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import anyio
import pytest

from fluxlit import FluxLit, Settings
from fluxlit.config.forwarded import TRUST_ALL, parse_trusted
from fluxlit.gateway.internal_access import InternalAccess, internal_access_for
from fluxlit.gateway.router import Gateway, build_gateway
from fluxlit.observability.access import AccessObserver

METRICS = "/__fluxlit/metrics"
PUBLIC = "203.0.113.9"
DEFAULT_TRUST = parse_trusted("127.0.0.1,::1")


def rule(trusted: str = "127.0.0.1,::1", allow: str | None = None, port: int | None = None) -> InternalAccess:
    return internal_access_for(
        parse_trusted(trusted), allow=parse_trusted(allow) if allow is not None else None, port=port
    )


# (rule, TCP peer, client a trusted proxy named in X-Forwarded-For or None, admitted)
ADMISSIONS = {
    "loopback": (rule(), "127.0.0.1", None, True),
    "loopback-range": (rule(), "127.0.0.5", None, True),
    "loopback-v6": (rule(), "::1", None, True),
    "loopback-v4-mapped": (rule(), "::ffff:127.0.0.1", None, True),
    "public-peer": (rule(), PUBLIC, None, False),
    "no-address": (rule(), None, None, False),
    "test-client": (rule(), "testclient", None, False),
    # a proxy on loopback relaying the internet must not hand it the scrape
    "relayed-public": (rule(), "127.0.0.1", PUBLIC, False),
    "relayed-loopback": (rule(), "127.0.0.1", "127.0.0.1", True),
    "trusted-peer": (rule("10.0.0.0/8"), "10.1.2.3", None, True),
    "relayed-trusted": (rule("10.0.0.0/8"), "10.1.2.3", "10.9.9.9", True),
    "relayed-untrusted": (rule("10.0.0.0/8"), "10.1.2.3", "8.8.8.8", False),
    # '*' trusts every peer: the default then shrinks to loopback, and a named client proves nothing
    "star-public-peer": (rule("*"), "8.8.8.8", None, False),
    "star-loopback": (rule("*"), "127.0.0.1", None, True),
    "star-relayed-loopback": (rule("*"), "10.0.0.1", "127.0.0.1", False),
    # an explicit list replaces the default
    "allowed": (rule(allow="192.0.2.0/24"), "192.0.2.5", None, True),
    "allow-list-without-loopback": (rule(allow="192.0.2.0/24"), "127.0.0.1", None, False),
    "relayed-allowed": (rule(allow="192.0.2.0/24"), "127.0.0.1", "192.0.2.5", True),
    "allow-star": (rule(allow="*"), None, PUBLIC, True),
    # on its own port: whoever reaches the port
    "own-port": (rule(port=9100), PUBLIC, None, True),
    "own-port-with-a-list": (rule(allow="10.0.0.0/8", port=9100), PUBLIC, None, False),
}


@pytest.mark.parametrize(("access", "peer", "forwarded", "admitted"), ADMISSIONS.values(), ids=ADMISSIONS.keys())
def test_who_is_admitted(access: InternalAccess, peer: str | None, forwarded: str | None, admitted: bool) -> None:
    assert access.admits(peer, forwarded) is admitted


@pytest.mark.parametrize(
    ("port", "server", "dedicated"),
    [(9100, ("0.0.0.0", 9100), True), (9100, ("127.0.0.1", 8000), False), (9100, None, False), (None, ("a", 1), False)],
)
def test_the_dedicated_port_is_told_by_the_local_address(
    port: int | None, server: tuple[str, int] | None, dedicated: bool
) -> None:
    assert InternalAccess(TRUST_ALL, port).on_dedicated_port(server) is dedicated


# --- through the gateway ---


async def metrics_endpoint(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"fluxlit_up 1\n"})


def gateway_for(settings: Settings | None = None, **kw: Any) -> Gateway:
    app = FluxLit()

    @app.api.get("/ping")
    def ping() -> dict[str, bool]:
        return {"pong": True}

    return build_gateway(app, settings, internal={METRICS: metrics_endpoint}, **kw)


def call(
    gateway: Gateway,
    raw_path: bytes,
    *,
    peer: str = "127.0.0.1",
    server: tuple[str, int] = ("127.0.0.1", 8000),
    headers: list[tuple[bytes, bytes]] | None = None,
    kind: str = "http",
) -> tuple[int, bytes]:
    """One request through the gateway in-process: (status or close code, body)."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": kind,
        "method": "GET",
        "path": unquote(raw_path.decode()),
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "http_version": "1.1",
        "scheme": "http" if kind == "http" else "ws",
        "headers": [(b"host", b"a"), *(headers or [])],
        "client": (peer, 50000),
        "server": server,
    }

    async def receive() -> dict[str, Any]:
        if kind == "websocket":
            return {"type": "websocket.connect"}
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        with anyio.fail_after(5):
            await gateway(scope, receive, send)

    anyio.run(run)
    if kind == "websocket":
        return sent[0].get("code", 0), b""
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.mark.parametrize("raw", [METRICS.encode(), b"/__fluxlit/%6detrics", b"/__fluxlit/%6D%65trics"])
def test_the_metrics_endpoint_is_404_to_a_public_client_however_it_is_spelled(raw: bytes) -> None:
    """Issue 15: `/__fluxlit/metrics` answered anyone on the public port, `/__fluxlit/%6detrics` too."""
    gateway = gateway_for()
    assert call(gateway, raw, peer=PUBLIC) == (404, b"Not Found\n")
    assert call(gateway, raw, peer="127.0.0.1") == (200, b"fluxlit_up 1\n")


def test_a_scrape_relayed_for_a_public_client_by_a_trusted_proxy_is_404() -> None:
    gateway = gateway_for()
    relayed = [(b"x-forwarded-for", PUBLIC.encode())]
    assert call(gateway, METRICS.encode(), peer="127.0.0.1", headers=relayed)[0] == 404


def test_a_refused_scrape_is_traffic_and_logged() -> None:
    logged: list[dict[str, Any]] = []

    class Log:
        def log(self, level: int, event: str, **fields: Any) -> None:
            logged.append(fields)

    gateway = gateway_for(observer=AccessObserver(None, logger=Log()))
    call(gateway, METRICS.encode(), peer="127.0.0.1")  # a real scrape: not logged
    call(gateway, METRICS.encode(), peer=PUBLIC)
    assert [(line["dispatch"], line["status"], line["client"]) for line in logged] == [
        ("internal", 404, f"{PUBLIC}:50000")
    ]


def test_metrics_allow_names_who_may_scrape() -> None:
    gateway = gateway_for(Settings(metrics_allow="192.0.2.0/24"))
    assert call(gateway, METRICS.encode(), peer="192.0.2.7")[0] == 200
    assert call(gateway, METRICS.encode(), peer="127.0.0.1")[0] == 404


def test_on_a_metrics_bind_the_endpoint_lives_there_alone() -> None:
    gateway = gateway_for(Settings(metrics_bind="0.0.0.0:9100"))
    metrics_port = ("10.0.0.8", 9100)
    assert call(gateway, METRICS.encode(), peer=PUBLIC, server=metrics_port)[0] == 200
    # nothing else answers there: the metrics port is no second way into the app
    assert call(gateway, b"/api/ping", peer=PUBLIC, server=metrics_port)[0] == 404
    assert call(gateway, b"/api/healthz", peer="127.0.0.1", server=metrics_port)[0] == 404
    assert call(gateway, b"/", peer="127.0.0.1", server=metrics_port)[0] == 404
    assert call(gateway, METRICS.encode(), server=metrics_port, kind="websocket")[0] == 1008
    # and the public port no longer serves it, not even to loopback
    assert call(gateway, METRICS.encode(), peer="127.0.0.1")[0] == 404
    assert call(gateway, b"/api/ping", peer=PUBLIC)[0] == 200
