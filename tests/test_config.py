"""fluxlit.config's public names: fluxlit 0.13's FluxlitSettings is our Settings, accepted wherever settings= is."""

from __future__ import annotations

import fluxlit
from fluxlit import FluxLit, FluxLitTestClient, Settings
from fluxlit.config import FluxlitSettings
from fluxlit.gateway.router import build_gateway


def test_fluxlit_settings_is_the_settings_class_from_both_import_places() -> None:
    assert FluxlitSettings is Settings
    assert fluxlit.FluxlitSettings is Settings


def test_the_app_takes_fluxlit_settings() -> None:
    app = FluxLit(settings=FluxlitSettings(title="Reference app", api_mount_path="/v1"))
    assert (app.title, app.api.title) == ("Reference app", "Reference app")
    assert FluxLitTestClient(app).api_get("/healthz").request.url.path == "/v1/healthz"


def test_the_gateway_takes_fluxlit_settings() -> None:
    gateway = build_gateway(FluxLit(), settings=FluxlitSettings(api_mount_path="/v2", root_path="/apps/x"))
    assert (gateway.routes.api_prefix, gateway.routes.root_path) == ("/v2", "/apps/x")
