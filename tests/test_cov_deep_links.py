"""PublicUrls without the gateway's scope state: env and settings fallbacks, a Host-less request, redoc."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request

from fluxlit import FluxLit
from fluxlit.config.settings import Settings
from fluxlit.deep_links import PublicUrls


@pytest.fixture(autouse=True)
def no_fluxlit_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "FLUXLIT_API_PREFIX",
        "FLUXLIT_API_MOUNT_PATH",
        "FLUXLIT_ROOT_PATH",
        "FLUXLIT_PUBLIC_BASE_URL",
        "FLUXLIT_TRUST_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)


def request(root_path: str = "", headers: list[tuple[bytes, bytes]] | None = None, **scope: Any) -> Request:
    return Request(
        {"type": "http", "scheme": "http", "path": "/", "root_path": root_path, "headers": headers or [], **scope}
    )


def test_an_explicit_trust_proxy_wins_over_the_app_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_TRUST_PROXY", "1")
    app = FluxLit(trust_proxy=True)
    assert PublicUrls(app, trust_proxy=False).trust_proxy is False
    assert PublicUrls(FluxLit(), trust_proxy=True).trust_proxy is True


@pytest.mark.parametrize("variable", ["FLUXLIT_API_PREFIX", "FLUXLIT_API_MOUNT_PATH"])
def test_the_api_prefix_comes_from_the_environment_outside_the_gateway(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "/v2/")
    assert FluxLit().urls.api_prefix() == "/v2"


def test_the_api_prefix_falls_back_to_the_app_settings_then_the_default() -> None:
    assert FluxLit(settings=Settings(api_mount_path="/rest")).urls.api_prefix() == "/rest"
    assert FluxLit().urls.api_prefix() == "/api"


def test_the_mount_is_the_request_root_path_without_the_api_prefix() -> None:
    urls = FluxLit().urls
    assert urls.mount(request("/apps/demo/api")) == "/apps/demo"
    assert urls.mount(request("/apps/demo/")) == "/apps/demo"


def test_a_request_without_host_uses_the_server_address_or_localhost() -> None:
    urls = FluxLit().urls
    assert urls.app_base(request(server=("10.0.0.7", 8080))) == "http://10.0.0.7:8080"
    assert urls.app_base(request()) == "http://localhost"


def test_redoc_url_follows_the_api_base_and_fastapis_setting() -> None:
    host = [(b"host", b"example.com")]
    assert FluxLit().urls.redoc_url(request(headers=host)) == "http://example.com/api/redoc"
    custom = FluxLit(fastapi_kwargs={"redoc_url": "/reference"})
    assert custom.urls.redoc_url(request(headers=host)) == "http://example.com/api/reference"
