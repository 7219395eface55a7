"""X-Forwarded-* through the gateway: believed only from trusted peers, dropped before the API, the links and the
access log see them otherwise, and rebuilt for this hop on the way to Streamlit. The pure trust rules are in
test_forwarded.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request

from fluxlit import FluxLit, Settings
from fluxlit.gateway.router import build_gateway
from fluxlit.observability.access import AccessObserver
from fluxlit.testing import TestClient
from tests._logs import RecordingLogger
from tests._origin import LoopbackOrigin, plan_ready_at

MOUNT = "/apps/demo"


def whoami_app() -> FluxLit:
    app = FluxLit()

    @app.api.get("/whoami")
    def whoami(request: Request) -> dict[str, Any]:
        return {
            "client": request.client.host if request.client else None,
            "scheme": request.url.scheme,
            "xff": request.headers.get("x-forwarded-for"),
            "xfh": request.headers.get("x-forwarded-host"),
        }

    return app


FORGED = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}


def test_untrusted_peer_forwarded_headers_are_dropped(gateway_test_client_factory: Any) -> None:
    client = gateway_test_client_factory(whoami_app(), settings=Settings(forwarded_allow_ips="10.0.0.0/8"))
    body = client.get("/api/whoami", headers=FORGED).json()
    assert body == {"client": "testclient", "scheme": "http", "xff": None, "xfh": None}


def test_trusted_peer_sets_client_and_scheme(gateway_test_client_factory: Any) -> None:
    client = gateway_test_client_factory(whoami_app(), settings=Settings(forwarded_allow_ips="*"))
    body = client.get("/api/whoami", headers=FORGED).json()
    assert body == {"client": "6.6.6.6", "scheme": "https", "xff": "6.6.6.6", "xfh": "evil.example"}


def test_a_forwarded_for_that_is_no_address_never_becomes_the_client(gateway_test_client_factory: Any) -> None:
    client = gateway_test_client_factory(whoami_app(), settings=Settings(forwarded_allow_ips="*"))
    body = client.get("/api/whoami", headers={"X-Forwarded-For": "<script>alert(1)</script>"}).json()
    assert body["client"] == "testclient"


def test_trust_all_applies_forwarded_headers_for_a_peer_without_an_address() -> None:
    import asyncio

    from fluxlit.gateway.router import build_gateway

    seen: dict[str, Any] = {}

    async def api(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scheme=scope["scheme"], client=scope["client"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    gateway = build_gateway(api, settings=Settings(forwarded_allow_ips="*"))
    scope = {"type": "http", "method": "GET", "path": "/api/x", "raw_path": b"/api/x", "root_path": "",
             "scheme": "http", "query_string": b"", "client": None,
             "headers": [(b"x-forwarded-for", b"9.9.9.9"), (b"x-forwarded-proto", b"https")]}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        pass

    asyncio.run(gateway(scope, receive, send))
    assert seen == {"scheme": "https", "client": ("9.9.9.9", 0)}


def test_trust_verdicts_are_remembered_per_peer_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from fluxlit.config.forwarded import parse_trusted
    from fluxlit.gateway import router as gateway

    monkeypatch.setattr(gateway, "MAX_REMEMBERED_PEERS", 2)
    remembered: dict[str | None, bool] = {}
    for peer in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1"):
        scope: dict[str, Any] = {"type": "http", "headers": [(b"x-forwarded-for", b"1.2.3.4")], "client": (peer, 1)}
        gateway._prepare_headers(scope, parse_trusted("10.0.0.1"), remembered, 65536)
        assert scope["state"].get("forwarded_client") == ("1.2.3.4" if peer == "10.0.0.1" else None)
    assert remembered == {"10.0.0.1": True, "10.0.0.2": False}


# --- Host and X-Forwarded-* from clients that are not trusted proxies ---

SPOOFED = {
    "X-Forwarded-For": "10.9.8.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Port": "444",
    "X-Forwarded-Prefix": "/evil",
    "Forwarded": "for=10.9.8.7;proto=https;host=evil.example",
}


UNTRUSTED = ("203.0.113.9", 50123)


def links_app(*, trust_proxy: bool = False) -> FluxLit:
    app = FluxLit(trust_proxy=trust_proxy)

    @app.api.get("/whoami")
    def whoami(request: Request) -> dict[str, Any]:
        return {
            "client": request.client.host if request.client else None,
            "scheme": request.url.scheme,
            "forwarded": sorted(k for k in request.headers if k.startswith("x-forwarded") or k == "forwarded"),
            "api_base": app.urls.api_base(request),
            "page": app.urls.page_url(request, "/"),
        }

    @app.page("/")
    def home(st: Any, client: Any) -> None:
        st.write("home")

    return app


def test_spoofed_forwarded_headers_never_reach_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLUXLIT_PUBLIC_BASE_URL", raising=False)
    with TestClient(build_gateway(links_app(trust_proxy=True)), client=UNTRUSTED) as client:
        seen = client.get("/api/whoami", headers={**SPOOFED, "Host": "app.example"}).json()
    assert seen["client"] == "203.0.113.9"
    assert seen["scheme"] == "http"
    assert seen["forwarded"] == []


def test_spoofed_forwarded_headers_never_reach_the_proxy_slot() -> None:
    received: list[list[tuple[bytes, bytes]]] = []

    async def proxy(scope: dict[str, Any], receive: Any, send: Any) -> None:
        received.append(list(scope["headers"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with TestClient(build_gateway(FluxLit(), proxy=proxy), client=UNTRUSTED) as client:
        assert client.get("/some/page", headers=SPOOFED).status_code == 204
    (headers,) = received
    names = {name for name, _ in headers}
    assert names.isdisjoint({name.lower().encode() for name in SPOOFED})


def test_spoofed_forwarded_headers_do_not_change_links_even_with_trust_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLUXLIT_PUBLIC_BASE_URL", raising=False)
    with TestClient(build_gateway(links_app(trust_proxy=True)), client=UNTRUSTED) as client:
        plain = client.get("/api/whoami", headers={"Host": "app.example"}).json()
        spoofed = client.get("/api/whoami", headers={**SPOOFED, "Host": "app.example"}).json()
    assert (spoofed["api_base"], spoofed["page"]) == (plain["api_base"], plain["page"])
    assert "evil" not in json.dumps(spoofed)


def test_public_base_url_pins_links_whatever_the_host_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_PUBLIC_BASE_URL", "https://app.example.com")
    with TestClient(build_gateway(links_app()), client=UNTRUSTED) as client:
        seen = client.get("/api/whoami", headers={"Host": "evil.example"}).json()
    assert seen["api_base"] == "https://app.example.com/api"
    assert seen["page"].startswith("https://app.example.com/")


@pytest.mark.parametrize("docs", ["/docs", "/openapi.json"])
def test_docs_redirect_is_a_path_never_the_host(docs: str) -> None:
    with TestClient(build_gateway(FluxLit(), root_path=MOUNT), client=UNTRUSTED) as client:
        response = client.get(MOUNT + docs, headers={**SPOOFED, "Host": "evil.example"}, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == f"{MOUNT}/api{docs}"


def test_spoofed_forwarded_for_does_not_change_the_logged_client() -> None:
    logger = RecordingLogger()
    gateway = build_gateway(links_app(), observer=AccessObserver(None, logger=logger))
    with TestClient(gateway, client=UNTRUSTED) as client:
        client.get("/api/whoami", headers=SPOOFED)
    (line,) = logger.lines
    assert line["client"] == "203.0.113.9:50123"
    assert "10.9.8.7" not in json.dumps(line)


# --- what Streamlit receives, over a real connection ---


def forwarding(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {
        name.decode(): value.decode()
        for name, value in headers
        if name.startswith(b"x-forwarded-") or name == b"forwarded"
    }


def test_streamlit_gets_this_hops_forwarded_headers_never_an_untrusted_clients(tmp_path: Path) -> None:
    with (
        LoopbackOrigin() as origin,
        TestClient(plan_ready_at(origin.port, tmp_path).gateway, client=UNTRUSTED) as client,
    ):
        assert client.get("/some/page", headers={**SPOOFED, "Host": "app.example"}).status_code == 200
    (seen,) = origin.requests
    assert forwarding(seen.headers) == {
        "x-forwarded-for": "203.0.113.9",
        "x-forwarded-proto": "http",
        "x-forwarded-host": "app.example",
        "x-forwarded-port": "80",
    }


def test_a_trusted_proxys_chain_reaches_streamlit_with_that_proxy_appended(tmp_path: Path) -> None:
    with LoopbackOrigin() as origin:
        plan = plan_ready_at(origin.port, tmp_path, forwarded_allow_ips="10.0.0.0/8", root_path=MOUNT)
        with TestClient(plan.gateway, client=("10.0.0.5", 50123)) as client:
            headers = {"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"}
            assert client.get(MOUNT + "/some/page", headers=headers).status_code == 200
    (seen,) = origin.requests
    got = forwarding(seen.headers)
    assert (got["x-forwarded-for"], got["x-forwarded-proto"], got["x-forwarded-prefix"]) == (
        "1.2.3.4, 10.0.0.5",
        "https",
        MOUNT,
    )
