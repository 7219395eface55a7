"""X-Forwarded-* trust: pure rules and what the gateway lets through."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Request

from fluxlit import FluxLit, Settings
from fluxlit.config.forwarded import forwarded_client, forwarded_scheme, is_trusted, parse_trusted
from fluxlit.errors import ConfigError


@pytest.mark.parametrize(
    ("peer", "xff", "trusted", "expected"),
    [
        ("10.0.0.5", "1.2.3.4", "10.0.0.0/8", "1.2.3.4"),
        ("10.0.0.5", "1.2.3.4, 10.0.0.9", "10.0.0.0/8", "1.2.3.4"),
        ("10.0.0.5", "6.6.6.6, 1.2.3.4", "10.0.0.0/8", "1.2.3.4"),  # a forged left entry is not believed
        ("8.8.8.8", "1.2.3.4", "10.0.0.0/8", "8.8.8.8"),
        ("10.0.0.5", "10.0.0.7", "10.0.0.0/8", "10.0.0.7"),
        ("::1", "2001:db8::1", "::1", "2001:db8::1"),
        # Entries that are not IP addresses are skipped, as nginx's realip does (issue 15: `<script>` was believed).
        ("10.0.0.5", "<script>", "10.0.0.0/8", "10.0.0.5"),
        ("10.0.0.5", "1.2.3.4, <script>", "10.0.0.0/8", "1.2.3.4"),
        ("10.0.0.5", "unknown, 10.0.0.9", "10.0.0.0/8", "10.0.0.9"),
        ("10.0.0.5", "1.2.3.4, evil.example, , 10.0.0.9", "10.0.0.0/8", "1.2.3.4"),
        ("10.0.0.5", "1.2.3.4:8080", "10.0.0.0/8", "10.0.0.5"),
        ("10.0.0.5", "[2001:db8::7]", "10.0.0.0/8", "[2001:db8::7]"),
        ("10.0.0.5", "1.2.3.4, " + "9" * 10_000, "10.0.0.0/8", "1.2.3.4"),
    ],
)
def test_forwarded_client_walks_right_to_left_past_trusted_hops(
    peer: str, xff: str, trusted: str, expected: str
) -> None:
    assert forwarded_client(peer, xff, parse_trusted(trusted)) == expected


@pytest.mark.parametrize(
    ("value", "websocket", "expected"),
    [("https", False, "https"), ("http, https", False, "https"), ("https", True, "wss"), ("gopher", False, None)],
)
def test_forwarded_scheme(value: str, websocket: bool, expected: str | None) -> None:
    assert forwarded_scheme(value, websocket) == expected


def test_star_trusts_every_peer_even_without_an_address() -> None:
    assert is_trusted("testclient", parse_trusted("*"))
    assert not is_trusted("testclient", parse_trusted("0.0.0.0/0"))


def test_bad_allow_list_names_the_bad_item() -> None:
    with pytest.raises(ConfigError, match="'nope' is not an IP address or CIDR"):
        Settings(forwarded_allow_ips="127.0.0.1,nope")


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


def test_replica_header_is_sent_when_named(gateway_test_client_factory: Any) -> None:
    client = gateway_test_client_factory(FluxLit(), settings=Settings(replica_id="replica-a"))
    assert client.get("/api/healthz").headers["x-fluxlit-replica"] == "replica-a"
    plain = gateway_test_client_factory(FluxLit())
    assert "x-fluxlit-replica" not in plain.get("/api/healthz").headers


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


@pytest.mark.parametrize(
    ("proto", "websocket", "scheme"),
    [
        ("https", False, "https"),
        ("http, HTTPS", True, "wss"),
        ("http", False, "http"),
        ("https, http", True, "ws"),
        ("gopher", False, None),
        ("", False, None),
        ("https, ftp", False, None),
    ],
)
def test_the_last_forwarded_proto_hop_names_the_scheme(proto: str, websocket: bool, scheme: str | None) -> None:
    assert forwarded_scheme(proto, websocket=websocket) == scheme
