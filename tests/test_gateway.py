"""Gateway dispatch: prefix and mount stripping, redirects, readiness, request ids."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import pytest
from fastapi import Request, WebSocket

from fluxlit import FluxLit, Settings
from fluxlit.gateway.router import build_gateway
from fluxlit.gateway.upstream_view import UpstreamView


async def echo_scope(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A plain ASGI API that answers with what it was given."""
    if scope["type"] != "http":
        return
    body = repr({"path": scope["path"], "raw_path": scope["raw_path"], "root_path": scope["root_path"]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def seen(client: Any, url: str) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return eval(response.text)  # repr of a dict of str/bytes written by echo_scope above


@pytest.mark.parametrize(
    ("mount", "url", "path", "raw_path", "root_path"),
    [
        ("", "/api/users", "/api/users", b"/api/users", "/api"),
        ("", "/api", "/api", b"/api", "/api"),
        ("", "/api/api/nested", "/api/api/nested", b"/api/api/nested", "/api"),
        (
            "/content/42",
            "/content/42/api/users",
            "/content/42/api/users",
            b"/content/42/api/users",
            "/content/42/api",
        ),
        # Behind a strip-prefix proxy the mount is already gone; the API still sees the public path.
        ("/content/42", "/api/users", "/content/42/api/users", b"/content/42/api/users", "/content/42/api"),
        ("", "/api/caf%C3%A9%20x", "/api/café x", b"/api/caf%C3%A9%20x", "/api"),
        (
            "/content/42",
            "/content/%34%32/api/users",
            "/content/42/api/users",
            b"/content/42/api/users",
            "/content/42/api",
        ),
    ],
)
def test_api_sees_public_path_raw_bytes_and_root_path(
    gateway_test_client_factory: Any, mount: str, url: str, path: str, raw_path: bytes, root_path: str
) -> None:
    client = gateway_test_client_factory(echo_scope, root_path=mount)
    assert seen(client, url) == {"path": path, "raw_path": raw_path, "root_path": root_path}


def test_with_encoded_slashes_allowed_the_api_gets_them_raw_inside_their_segment(
    gateway_test_client_factory: Any,
) -> None:
    client = gateway_test_client_factory(echo_scope, settings=Settings(allow_encoded_slashes=True))
    assert seen(client, "/api/a%2Fb") == {"path": "/api/a/b", "raw_path": b"/api/a%2Fb", "root_path": "/api"}


def test_custom_api_prefix_routes_and_old_prefix_goes_to_the_proxy_slot(
    gateway_test_client_factory: Any,
) -> None:
    client = gateway_test_client_factory(echo_scope, api_prefix="/v1")
    assert seen(client, "/v1/x")["root_path"] == "/v1"
    assert client.get("/api/x").status_code == 503


def test_prefix_match_is_segment_wise(gateway_test_client_factory: Any) -> None:
    client = gateway_test_client_factory(echo_scope)
    response = client.get("/apix")
    assert response.status_code == 503
    assert response.headers["retry-after"]


@pytest.mark.parametrize("docs", ["/docs", "/docs/", "/redoc", "/redoc/", "/openapi.json"])
@pytest.mark.parametrize("mount", ["", "/apps/demo"])
def test_bare_docs_paths_redirect_307_to_the_api(gateway_test_client_factory: Any, docs: str, mount: str) -> None:
    client = gateway_test_client_factory(FluxLit(), root_path=mount)
    response = client.get(f"{mount}{docs}?x=1", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == f"{mount}/api{docs}?x=1"


def test_docs_redirect_leads_to_working_swagger(gateway_test_client_factory: Any) -> None:
    client = gateway_test_client_factory(FluxLit(), root_path="/apps/demo")
    response = client.get("/apps/demo/docs")
    assert response.status_code == 200
    assert "/apps/demo/api/openapi.json" in response.text


def test_healthz_is_ok_whatever_the_upstream(gateway_test_client_factory: Any) -> None:
    down = UpstreamView("failed", detail="boom")
    client = gateway_test_client_factory(FluxLit(), upstream_status=lambda: down)
    response = client.get("/api/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_without_upstream_is_ready_not_configured(gateway_test_client_factory: Any) -> None:
    response = gateway_test_client_factory(FluxLit()).get("/api/readyz")
    assert (response.status_code, response.json()) == (
        200,
        {"status": "ready", "streamlit": "not_configured"},
    )


def test_readyz_with_a_ready_upstream_is_200(gateway_test_client_factory: Any) -> None:
    status = UpstreamView("ready", generation=3, host="127.0.0.1", port=1)
    response = gateway_test_client_factory(FluxLit(), upstream_status=lambda: status).get("/api/readyz")
    assert (response.status_code, response.json()) == (
        200,
        {"status": "ready", "streamlit": "ok", "generation": 3},
    )


@pytest.mark.parametrize("state", ["starting", "restarting", "unhealthy", "stopped", "failed"])
def test_readyz_is_503_with_retry_after_while_upstream_is_not_ready(
    gateway_test_client_factory: Any, state: str
) -> None:
    status = UpstreamView(state, detail="exit code 1", retry_after_seconds=3)
    response = gateway_test_client_factory(FluxLit(), upstream_status=lambda: status).get("/api/readyz")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "3"
    assert response.json() == {"status": "not_ready", "streamlit": state, "detail": "exit code 1"}


def test_readyz_turns_503_once_stopping_begins(gateway_test_client_factory: Any) -> None:
    from fluxlit.testing import TestClient

    gateway = build_gateway(FluxLit(), upstream_status=lambda: UpstreamView("ready"))
    client = TestClient(gateway)
    assert client.get("/api/readyz").status_code == 200
    gateway.begin_stopping()
    response = client.get("/api/readyz")
    assert (response.status_code, response.json()["streamlit"]) == (503, "stopping")


def test_health_routes_follow_the_mount(gateway_test_client_factory: Any) -> None:
    client = gateway_test_client_factory(FluxLit(), root_path="/apps/demo")
    assert client.get("/apps/demo/api/healthz").status_code == 200
    assert client.get("/apps/demo/api/readyz").status_code == 200


def test_health_routes_are_not_in_the_openapi_schema(gateway_test_client_factory: Any) -> None:
    document = gateway_test_client_factory(FluxLit()).get("/api/openapi.json").json()
    assert document["paths"] == {}


@pytest.mark.parametrize("probe", ["/healthz", "/readyz"])
def test_the_gateway_and_a_bare_app_api_give_the_same_probe_answers(
    gateway_test_client_factory: Any, probe: str
) -> None:
    from fluxlit.testing import TestClient

    app = FluxLit()
    through_gateway = gateway_test_client_factory(app).get("/api" + probe)
    bare = TestClient(app.api).get(probe)
    assert (through_gateway.status_code, through_gateway.content) == (bare.status_code, bare.content)
    assert through_gateway.headers["content-type"] == bare.headers["content-type"] == "application/json"


@pytest.mark.parametrize("probe", ["/healthz", "/readyz"])
def test_a_user_route_for_a_probe_wins_through_the_gateway_even_when_added_later(
    gateway_test_client_factory: Any, probe: str
) -> None:
    app = FluxLit()
    client = gateway_test_client_factory(app, root_path="/apps/demo")
    assert client.get("/apps/demo/api" + probe).json()["status"] in ("ok", "ready")

    @app.api.get(probe)
    def mine() -> dict[str, str]:
        return {"mine": probe}

    assert client.get("/apps/demo/api" + probe).json() == {"mine": probe}


def test_a_user_readyz_replaces_the_stopping_answer_too() -> None:
    from fluxlit.testing import TestClient

    app = FluxLit()

    @app.api.get("/readyz")
    def mine() -> dict[str, str]:
        return {"mine": "ready"}

    gateway = build_gateway(app, upstream_status=lambda: UpstreamView("ready"))
    gateway.begin_stopping()
    assert TestClient(gateway).get("/api/readyz").json() == {"mine": "ready"}


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


def test_non_api_websocket_without_upstream_is_closed_1013(gateway_test_client_factory: Any) -> None:
    from starlette.websockets import WebSocketDisconnect

    client = gateway_test_client_factory(FluxLit())
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/_stcore/stream"):
        pass
    assert info.value.code == 1013


def test_api_websockets_reach_fastapi(gateway_test_client_factory: Any) -> None:
    app = FluxLit()

    @app.api.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        await socket.send_text("hi " + await socket.receive_text())
        await socket.close()

    client = gateway_test_client_factory(app)
    with client.websocket_connect("/api/ws") as socket:
        socket.send_text("there")
        assert socket.receive_text() == "hi there"


def test_lifespan_reaches_the_api(gateway_test_client_factory: Any) -> None:
    from contextlib import asynccontextmanager

    events: list[str] = []

    @asynccontextmanager
    async def lifespan(_: Any) -> Any:
        events.append("start")
        yield
        events.append("stop")

    app = FluxLit(fastapi_kwargs={"lifespan": lifespan})
    with gateway_test_client_factory(app) as client:
        assert client.get("/api/healthz").status_code == 200
    assert events == ["start", "stop"]


def test_websocket_to_an_internal_path_is_not_served_by_the_http_endpoint(gateway_test_client_factory: Any) -> None:
    from starlette.websockets import WebSocketDisconnect

    async def http_only(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - must not be called
        raise AssertionError("internal endpoint called for a WebSocket")

    client = gateway_test_client_factory(FluxLit(), internal={"/__fluxlit/metrics": http_only})
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/__fluxlit/metrics"):
        pass
    assert info.value.code == 1013  # went to the proxy slot (no upstream here)


def open_websocket(gateway: Any, raw_path: bytes, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    """Connect one WebSocket to `gateway` in-process, as hypercorn would hand it over; what the gateway sent."""
    scope: dict[str, Any] = {
        "type": "websocket",
        "path": raw_path.decode(),
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    anyio.run(gateway, scope, receive, send)
    return sent


def test_websocket_denials_carry_the_request_id() -> None:
    async def deny(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.http.response.start", "status": 503, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"restarting"})

    sent = open_websocket(build_gateway(FluxLit(), proxy=deny), b"/_stcore/stream", [(b"x-request-id", b"rid-ws")])
    assert (b"x-request-id", b"rid-ws") in sent[0]["headers"]


def test_a_websocket_to_a_dot_segment_path_is_closed_1008_with_the_reason() -> None:
    sent = open_websocket(build_gateway(FluxLit()), b"/pages/../_stcore/stream", [(b"host", b"example.com")])
    assert [(m["type"], m["code"], m["reason"]) for m in sent] == [
        ("websocket.close", 1008, "Paths with '.' or '..' segments are refused.")
    ]


def test_build_gateway_refuses_what_is_not_an_app() -> None:
    with pytest.raises(TypeError, match="build_gateway needs a FluxLit or an ASGI app, got int"):
        build_gateway(42)
