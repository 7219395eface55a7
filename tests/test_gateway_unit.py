"""Gateway routing, in-process with a recording ASGI API: what the API sees of the path, the prefix and the mount;
segment-wise prefix matching; the docs redirects; which slot an HTTP or WebSocket request reaches."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import WebSocket

from fluxlit import FluxLit, Settings


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


def test_websocket_to_an_internal_path_is_not_served_by_the_http_endpoint(gateway_test_client_factory: Any) -> None:
    from starlette.websockets import WebSocketDisconnect

    async def http_only(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - must not be called
        raise AssertionError("internal endpoint called for a WebSocket")

    client = gateway_test_client_factory(FluxLit(), internal={"/__fluxlit/metrics": http_only})
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/__fluxlit/metrics"):
        pass
    assert info.value.code == 1013  # went to the proxy slot (no upstream here)
