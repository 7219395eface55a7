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
from tests._live import free_port
from tests._logs import JsonLog
from tests._origin import LoopbackOrigin, app_with_a_page, plan_ready_at


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


def access_lines(log: JsonLog) -> list[dict[str, Any]]:
    return [line for line in log.lines() if line["event"] == "request"]


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


def test_a_minted_request_id_is_the_same_in_the_response_the_api_and_the_access_line(
    tmp_path: Path, log_stream: JsonLog
) -> None:
    with served(tmp_path) as client:
        response = client.get("/api/hello")
    minted = response.headers["x-request-id"]
    assert response.json() == [minted]
    user = next(line for line in log_stream.lines() if line["event"] == "inside the handler")
    (access,) = access_lines(log_stream)
    assert (user["request_id"], access["request_id"], access["dispatch"]) == (minted, minted, "api")


def test_a_proxied_request_carries_its_id_to_streamlit_and_into_the_access_line(
    tmp_path: Path, log_stream: JsonLog
) -> None:
    with LoopbackOrigin() as origin, served(tmp_path, origin.port) as client:
        response = client.get("/some/page", headers=[("X-Request-ID", "rid-page"), ("X-Request-ID", "rid-other")])
    assert (response.status_code, response.headers["x-request-id"]) == (200, "rid-page")
    (seen,) = origin.requests
    assert seen.header("x-request-id") == "rid-page"
    (access,) = access_lines(log_stream)
    assert (access["request_id"], access["dispatch"], access["status"]) == ("rid-page", "proxy", 200)


def test_an_invalid_request_id_never_reaches_streamlit_the_replacement_does(tmp_path: Path) -> None:
    with LoopbackOrigin() as origin, served(tmp_path, origin.port) as client:
        response = client.get("/some/page", headers={"X-Request-ID": "forged line"})
    replacement = response.headers["x-request-id"]
    assert replacement != "forged line"
    (seen,) = origin.requests
    assert seen.header("x-request-id") == replacement


def test_streamlits_own_request_id_in_its_answer_is_replaced_not_doubled(tmp_path: Path) -> None:
    async def answers_with_its_own_id(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-request-id", b"streamlit-id")]})
        await send({"type": "http.response.body", "body": b"page"})

    with LoopbackOrigin(answers_with_its_own_id) as origin, served(tmp_path, origin.port) as client:
        response = client.get("/some/page", headers={"X-Request-ID": "rid-mine"})
    assert (response.text, response.headers.get_list("x-request-id")) == ("page", ["rid-mine"])


def test_a_failed_proxied_request_logs_its_warning_under_the_id_the_client_got(
    tmp_path: Path, log_stream: JsonLog
) -> None:
    with served(tmp_path, free_port()) as client:  # published ready, but nothing listens there: 502
        response = client.get("/some/page")
    assert response.status_code == 502
    minted = response.headers["x-request-id"]
    (warning,) = [line for line in log_stream.lines() if line["logger"] == "proxy"]
    (access,) = access_lines(log_stream)
    assert (warning["level"], warning["request_id"], access["request_id"]) == ("warning", minted, minted)


def test_websocket_denials_carry_the_request_id() -> None:
    async def deny(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.http.response.start", "status": 503, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"restarting"})

    sent = open_websocket(build_gateway(FluxLit(), proxy=deny), b"/_stcore/stream", [(b"x-request-id", b"rid-ws")])
    assert (b"x-request-id", b"rid-ws") in sent[0]["headers"]
