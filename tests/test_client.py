"""ApiClient against a real FastAPI app behind the gateway (in-process transport, no sockets)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pydantic
import pytest
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from fluxlit import FluxLit, FluxLitTestClient
from fluxlit.client import ApiClient, ApiError, current_request_id, register_test_transport, request_id_scope

BASE = "http://client-tests.invalid/api"


class Item(BaseModel):
    name: str
    qty: int


def make_app() -> FluxLit:
    app = FluxLit(title="Echo")

    @app.api.api_route("/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def echo(request: Request) -> dict[str, Any]:
        return {
            "method": request.method,
            "authorization": request.headers.get("authorization"),
            "x_team": request.headers.get("x-team"),
            "x_request_id": request.headers.get("x-request-id"),
            "body": (await request.body()).decode(),
        }

    @app.api.get("/missing")
    def missing() -> JSONResponse:
        return JSONResponse({"detail": "no such thing"}, status_code=404)

    @app.api.get("/items")
    def items() -> list[dict[str, Any]]:
        return [{"name": "bolt", "qty": 3}]

    @app.api.get("/not-an-item")
    def not_an_item() -> dict[str, str]:
        return {"name": "bolt"}

    @app.api.post("/items")
    async def add_item(request: Request) -> dict[str, Any]:
        sent = await request.json()
        return {"name": sent["name"].upper(), "qty": sent["qty"] + 1}

    return app


@pytest.fixture
def gateway() -> Iterator[FluxLitTestClient]:
    tc = FluxLitTestClient(make_app())
    unregister = register_test_transport(BASE, tc.api)
    try:
        yield tc
    finally:
        unregister()


@pytest.mark.usefixtures("gateway")
def test_every_verb_reaches_the_api_under_the_prefix() -> None:
    client = ApiClient(BASE)
    for verb in ("get", "post", "put", "patch", "delete"):
        assert getattr(client, verb)("/echo").json()["method"] == verb.upper()


def test_the_base_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_INTERNAL_API_BASE", "http://127.0.0.1:9999/apps/x/api/")
    assert ApiClient().url("/users") == "http://127.0.0.1:9999/apps/x/api/users"
    monkeypatch.delenv("FLUXLIT_INTERNAL_API_BASE")
    assert ApiClient().url("users") == "http://127.0.0.1:8000/api/users"


@pytest.mark.parametrize("path", ["http://evil.example/x", "//evil.example/x"])
def test_absolute_urls_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="relative to the API prefix"):
        ApiClient(BASE).get(path)


@pytest.mark.usefixtures("gateway")
def test_headers_merge_defaults_then_factory_then_call() -> None:
    client = ApiClient(
        BASE,
        default_headers={"X-Team": "default", "Authorization": "Basic d"},
        auth_header_factory=lambda: {"Authorization": "Bearer factory"},
    )
    assert client.get("/echo").json()["authorization"] == "Bearer factory"
    body = client.get("/echo", headers={"X-Team": "call"}).json()
    assert (body["x_team"], body["authorization"]) == ("call", "Bearer factory")


@pytest.mark.usefixtures("gateway")
def test_with_bearer_as_a_context_manager_shares_the_pool_and_leaves_it_open() -> None:
    pool = httpx.Client()
    parent = ApiClient("http://127.0.0.1:1/api", http_client=pool)
    with parent.with_bearer("tok") as api:
        assert api.headers_for_call()["Authorization"] == "Bearer tok"
        assert api._pool() is pool
    assert not pool.is_closed
    assert "Authorization" not in parent.headers_for_call()
    pool.close()


@pytest.mark.usefixtures("gateway")
def test_with_bearer_sends_the_token() -> None:
    with ApiClient(BASE).with_bearer("abc") as api:
        assert api.get("/echo").json()["authorization"] == "Bearer abc"


@pytest.mark.usefixtures("gateway")
def test_for_fluxlit_takes_a_token_or_a_factory_not_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_INTERNAL_API_BASE", BASE)
    assert ApiClient.for_fluxlit(bearer_token="t").get("/echo").json()["authorization"] == "Bearer t"
    with pytest.raises(ValueError, match="not both"):
        ApiClient.for_fluxlit(bearer_token="t", auth_header_factory=dict)


@pytest.mark.usefixtures("gateway")
def test_the_current_request_id_is_propagated_unless_the_call_sets_one() -> None:
    client = ApiClient(BASE)
    assert current_request_id() is None
    with request_id_scope("page-run-42"):
        assert client.get("/echo").json()["x_request_id"] == "page-run-42"
        assert client.get("/echo", headers={"x-request-id": "mine"}).json()["x_request_id"] == "mine"
        assert ApiClient(BASE, propagate_request_id=False).get("/echo").json()["x_request_id"] != "page-run-42"
    assert current_request_id() is None


@pytest.mark.usefixtures("gateway")
@pytest.mark.parametrize("verb", ["get", "post", "put", "delete"])
def test_every_verb_returns_an_error_status_as_a_response_as_httpx_does(verb: str) -> None:
    response = getattr(ApiClient(BASE), verb)("/missing")
    assert response.status_code in (404, 405)
    with pytest.raises(httpx.HTTPStatusError):
        response.raise_for_status()


@pytest.mark.usefixtures("gateway")
def test_a_raising_client_turns_an_error_status_into_api_error_with_status_and_body() -> None:
    client = ApiClient(BASE, raise_for_status=True)
    with pytest.raises(ApiError) as caught:
        client.get("/missing")
    assert caught.value.status_code == 404
    assert "no such thing" in caught.value.body
    assert "GET http://client-tests.invalid/api/missing answered 404" in str(caught.value)
    assert client.get("/echo").status_code == 200


@pytest.mark.usefixtures("gateway")
def test_one_call_may_override_the_clients_raising_choice() -> None:
    assert ApiClient(BASE, raise_for_status=True).get("/missing", raise_for_status=False).status_code == 404
    with pytest.raises(ApiError, match="answered 404"):
        ApiClient(BASE).get("/missing", raise_for_status=True)


@pytest.mark.usefixtures("gateway")
def test_with_bearer_keeps_the_raising_choice() -> None:
    with ApiClient(BASE, raise_for_status=True).with_bearer("t") as api, pytest.raises(ApiError):
        api.get("/missing")


@pytest.mark.usefixtures("gateway")
def test_get_model_validates_the_answer_with_pydantic() -> None:
    assert ApiClient(BASE).get_model("/items", list[Item]) == [Item(name="bolt", qty=3)]


@pytest.mark.usefixtures("gateway")
def test_get_model_refuses_an_answer_of_the_wrong_shape() -> None:
    with pytest.raises(pydantic.ValidationError, match="qty"):
        ApiClient(BASE).get_model("/not-an-item", Item)


@pytest.mark.usefixtures("gateway")
def test_get_model_raises_for_an_error_status() -> None:
    with pytest.raises(httpx.HTTPStatusError, match="404"):
        ApiClient(BASE).get_model("/missing", Item)
    with pytest.raises(ApiError, match="no such thing"):
        ApiClient(BASE, raise_for_status=True).get_model("/missing", Item)


@pytest.mark.usefixtures("gateway")
@pytest.mark.parametrize(
    "payload",
    [{"body": Item(name="nut", qty=1)}, {"body": {"name": "nut", "qty": 1}}, {"json": {"name": "nut", "qty": 1}}],
    ids=["model", "mapping", "json"],
)
def test_post_model_sends_a_model_a_mapping_or_json_and_validates_the_answer(payload: dict[str, Any]) -> None:
    assert ApiClient(BASE).post_model("/items", Item, **payload) == Item(name="NUT", qty=2)


def test_post_model_refuses_both_body_and_json() -> None:
    with pytest.raises(TypeError, match=r"post_model\('/items'\) got both body= and json="):
        ApiClient(BASE).post_model("/items", Item, body={"name": "a"}, json={"name": "b"})


@pytest.mark.usefixtures("gateway")
def test_post_model_raises_for_an_error_status() -> None:
    with pytest.raises(httpx.HTTPStatusError, match="405"):
        ApiClient(BASE).post_model("/missing", Item, json={})


def test_monkeypatching_request_intercepts_every_verb(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []

    def fake(self: ApiClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
        seen.append((method, path))
        return httpx.Response(200, json={"fake": True})

    monkeypatch.setattr(ApiClient, "request", fake)
    client = ApiClient("http://127.0.0.1:1/api")
    for verb in ("get", "post", "put", "patch", "delete"):
        assert getattr(client, verb)("/x").json() == {"fake": True}
    assert seen == [("GET", "/x"), ("POST", "/x"), ("PUT", "/x"), ("PATCH", "/x"), ("DELETE", "/x")]


def test_close_closes_only_a_pool_the_client_opened() -> None:
    own = ApiClient("http://127.0.0.1:1/api")
    pool = own._pool()
    with own:
        pass
    assert pool.is_closed
    borrowed = httpx.Client()
    ApiClient("http://127.0.0.1:1/api", http_client=borrowed).close()
    assert not borrowed.is_closed
    borrowed.close()


def test_an_unregistered_test_transport_no_longer_routes_calls() -> None:
    tc = FluxLitTestClient(make_app())
    unregister = register_test_transport(BASE, tc.api)
    client = ApiClient(BASE)
    assert client.get("/echo").status_code == 200
    unregister()
    assert client._pool() is not tc.api  # the next call would go to the network (never reached here)
    client.close()
