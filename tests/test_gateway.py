"""The gateway's own answers, in-process: the health and readiness probes (by the upstream's state, during a graceful
stop, against a route of the app's own), the replica header, the lifespan, and what build_gateway accepts.

Where requests go is in test_gateway_unit.py; forwarded headers, proxying to a real upstream, request ids and
the proxy's failures and limits are in the other test_gateway_*.py files (docs/testing.md lists them).
"""

from __future__ import annotations

from typing import Any

import pytest

from fluxlit import FluxLit, Settings
from fluxlit.gateway.router import build_gateway
from fluxlit.gateway.upstream_view import UpstreamView


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


def test_replica_header_is_sent_when_named(gateway_test_client_factory: Any) -> None:
    client = gateway_test_client_factory(FluxLit(), settings=Settings(replica_id="replica-a"))
    assert client.get("/api/healthz").headers["x-fluxlit-replica"] == "replica-a"
    plain = gateway_test_client_factory(FluxLit())
    assert "x-fluxlit-replica" not in plain.get("/api/healthz").headers


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


def test_build_gateway_refuses_what_is_not_an_app() -> None:
    with pytest.raises(TypeError, match="build_gateway needs a FluxLit or an ASGI app, got int"):
        build_gateway(42)
