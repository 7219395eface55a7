"""Request ids, end to end: minted, kept or replaced by the gateway, and then one id in the response, in what the API
and Streamlit receive, in user code's log lines, in the proxy's warnings and in the access line.

The end-to-end tests run the gateway as `fluxlit serve` composes it (its access observer included) in-process,
with a real HTTP server on loopback where the Streamlit child would be (tests/_origin.py)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request

from fluxlit import FluxLit
from fluxlit.gateway.router import build_gateway
from fluxlit.testing import TestClient
from tests._gateway_ws import open_websocket
from tests._logs import JsonLog
from tests._origin import app_with_a_page, plan_ready_at


def correlated_app() -> FluxLit:
    """Its handler logs a line and answers with the request ids it was given."""
    app = app_with_a_page()

    @app.api.get("/hello")
    def hello(request: Request) -> list[str]:
        logging.getLogger("user.code").info("inside the handler")
        return request.headers.getlist("x-request-id")

    return app


@contextmanager
def served(tmp_path: Path, upstream_port: int | None = None) -> Generator[TestClient, None, None]:
    with TestClient(plan_ready_at(upstream_port, tmp_path, correlated_app()).gateway) as client:
        yield client


@pytest.mark.parametrize("url", ["/api/healthz", "/api/openapi.json", "/somewhere", "/api/missing"])
def test_every_response_carries_a_new_request_id(gateway_test_client_factory: Any, url: str) -> None:
    client = gateway_test_client_factory(FluxLit())
    first = client.get(url).headers["x-request-id"]
    second = client.get(url).headers["x-request-id"]
    assert first != second
    assert len(first) == 32


def test_a_minted_request_id_is_a_random_uuid4_in_hex() -> None:
    from fluxlit.gateway.request_id import new_request_id

    ids = {new_request_id() for _ in range(2000)}
    assert len(ids) == 2000
    for minted in ids:
        parsed = uuid.UUID(minted)
        assert (parsed.hex, parsed.version, parsed.variant) == (minted, 4, uuid.RFC_4122)


def test_a_valid_inbound_request_id_is_kept(gateway_test_client_factory: Any) -> None:
    client = gateway_test_client_factory(FluxLit())
    response = client.get("/api/healthz", headers={"X-Request-ID": "abc-123.DEF_4"})
    assert response.headers["x-request-id"] == "abc-123.DEF_4"


@pytest.mark.parametrize("bad", ["", "a b", "a\tb", "x" * 129, "évil", "a;b", "a,b"])
def test_an_invalid_inbound_request_id_is_replaced(gateway_test_client_factory: Any, bad: str) -> None:
    client = gateway_test_client_factory(FluxLit())
    response = client.get("/api/healthz", headers={"X-Request-ID": bad.encode("utf-8")})
    assert response.headers["x-request-id"] != bad
    assert len(response.headers["x-request-id"]) == 32


def test_the_api_sees_exactly_one_request_id_header(gateway_test_client_factory: Any) -> None:
    app = FluxLit()

    @app.api.get("/rid")
    def rid(request: Request) -> list[str]:
        return request.headers.getlist("x-request-id")

    client = gateway_test_client_factory(app)
    response = client.get("/api/rid", headers=[("X-Request-ID", "one"), ("X-Request-ID", "two")])
    assert response.json() == ["one"]
    assert response.headers["x-request-id"] == "one"


def test_user_code_log_lines_carry_the_request_id(tmp_path: Path, log_stream: JsonLog) -> None:
    with served(tmp_path) as client:
        client.get("/api/hello", headers={"X-Request-ID": "rid-2"})
    user = next(line for line in log_stream.lines() if line["event"] == "inside the handler")
    assert (user["logger"], user["request_id"]) == ("user.code", "rid-2")


def test_websocket_denials_carry_the_request_id() -> None:
    async def deny(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.http.response.start", "status": 503, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"restarting"})

    sent = open_websocket(build_gateway(FluxLit(), proxy=deny), b"/_stcore/stream", [(b"x-request-id", b"rid-ws")])
    assert (b"x-request-id", b"rid-ws") in sent[0]["headers"]
