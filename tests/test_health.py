"""app.api's own /healthz and /readyz: the seed's bare FastAPI tests, and a user's route of the same path wins."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from fluxlit import FluxLit
from fluxlit.health import FallbackRoute, add_health_routes, user_route_matches


def test_bare_app_api_answers_healthz_ok() -> None:
    response = TestClient(FluxLit().api).get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_bare_app_api_answers_readyz_ready_with_no_streamlit_configured() -> None:
    response = TestClient(FluxLit().api).get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready", "streamlit": "not_configured"})


def test_bare_app_api_answers_head_on_both_probes() -> None:
    client = TestClient(FluxLit().api)
    assert [client.head(path).status_code for path in ("/healthz", "/readyz")] == [200, 200]


def test_the_probes_are_outside_the_openapi_schema_but_listed_as_routes() -> None:
    api = FluxLit().api
    assert api.openapi()["paths"] == {}
    probes = [r for r in api.routes if isinstance(r, FallbackRoute)]
    assert [(r.path, r.include_in_schema) for r in probes] == [("/healthz", False), ("/readyz", False)]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_a_user_route_registered_after_ours_wins(path: str) -> None:
    app = FluxLit()

    @app.api.get(path)
    def mine() -> dict[str, str]:
        return {"mine": path}

    assert TestClient(app.api).get(path).json() == {"mine": path}


def test_a_user_route_from_an_included_router_wins() -> None:
    app = FluxLit()
    router = APIRouter()

    @router.get("/healthz")
    def deep() -> dict[str, bool]:
        return {"deep": True}

    app.api.include_router(router)
    assert TestClient(app.api).get("/healthz").json() == {"deep": True}


def test_a_user_route_for_another_method_leaves_our_get_in_place() -> None:
    app = FluxLit()

    @app.api.post("/healthz")
    def poke() -> dict[str, str]:
        return {"poked": "yes"}

    client = TestClient(app.api)
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.post("/healthz").json() == {"poked": "yes"}


def test_a_catch_all_route_of_the_user_answers_the_probes_too() -> None:
    app = FluxLit()

    @app.api.get("/{anything:path}")
    def catch_all(anything: str) -> dict[str, str]:
        return {"caught": anything}

    assert TestClient(app.api).get("/healthz").json() == {"caught": "healthz"}


def test_add_health_routes_works_on_any_fastapi() -> None:
    api = FastAPI()
    add_health_routes(api)
    assert TestClient(api).get("/readyz").json()["streamlit"] == "not_configured"


def test_a_user_get_route_owns_head_on_its_path_too() -> None:
    app = FluxLit()

    @app.api.get("/healthz")
    def mine() -> dict[str, str]:
        return {"mine": "yes"}

    # FastAPI's GET routes do not answer HEAD: the user's route owns the path, so ours stays out of it.
    assert TestClient(app.api).head("/healthz").status_code == 405


def test_a_plain_asgi_callable_has_no_routes_of_its_own() -> None:
    async def plain(scope: Any, receive: Any, send: Any) -> None: ...

    assert user_route_matches(plain, {"type": "http", "path": "/healthz", "method": "GET"}) is False
