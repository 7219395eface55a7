"""Liveness and readiness: the answers the gateway and ``app.api`` share, and ``app.api``'s own two routes.

This module owns the bodies of ``/healthz`` and ``/readyz`` for both places that answer them, so the gateway
(``{root}{prefix}/healthz``, which knows Streamlit's state) and a bare ``app.api`` (``TestClient(app.api)``, which
serves no Streamlit) cannot drift apart. Our probes are a fallback: any route of the user's that matches the
request (its own ``/healthz``, a catch-all, a mount) answers it instead, in ``app.api`` and through the gateway
alike. FastAPI's first-registered-wins order would otherwise hide a user's route behind ours without a word.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Match, Route
from starlette.types import Scope

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
LIVE_BODY: dict[str, object] = {"status": "ok"}
# The readiness of an app that serves no Streamlit: the gateway's answer when no upstream is set, and always
# app.api's own (it runs without the gateway, so there is no Streamlit for it to wait for).
NOT_CONFIGURED_BODY: dict[str, object] = {"status": "ready", "streamlit": "not_configured"}


class FallbackRoute(Route):
    """A GET route that matches only what no other route of the same app matches."""

    def __init__(self, path: str, body: dict[str, object], api: FastAPI) -> None:
        async def endpoint(request: Request) -> JSONResponse:
            return JSONResponse(body)

        endpoint.__name__ = "fluxlit_" + path.strip("/")
        super().__init__(path, endpoint, methods=["GET"], include_in_schema=False)
        self._api = api

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is Match.FULL and user_route_matches(self._api, scope):
            return Match.NONE, {}
        return match, child_scope


def add_health_routes(api: FastAPI) -> None:
    """Register ``/healthz`` and ``/readyz`` on ``api``, outside its OpenAPI schema."""
    api.router.routes.append(FallbackRoute(HEALTH_PATH, LIVE_BODY, api))
    api.router.routes.append(FallbackRoute(READY_PATH, NOT_CONFIGURED_BODY, api))


def user_route_matches(api: Any, scope: Scope) -> bool:
    """Whether a route of ``api`` other than our probes fully matches ``scope`` (an ASGI app with no route
    list, such as a bare ASGI callable, has none)."""
    routes = getattr(api, "routes", None)
    if not isinstance(routes, list):
        return False
    # Matching may write into the scope (FastAPI keeps its routing context there): probe a copy. A HEAD probe
    # asks for GET: FastAPI's GET routes do not list HEAD, yet a user's GET route owns the path for both.
    probe = dict(scope)
    if probe.get("method") == "HEAD":
        probe["method"] = "GET"
    return any(not isinstance(r, FallbackRoute) and r.matches(probe)[0] is Match.FULL for r in routes)
