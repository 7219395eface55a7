"""Deep links: ?page= selection, query parameters in pages, and app.urls for links built by the API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import Request
from starlette.requests import Request as StarletteRequest

from fluxlit import FluxLit, FluxLitTestClient, match_nav_page, query_params
from fluxlit.app import PageRecord
from fluxlit.config.settings import Settings
from fluxlit.deep_links import NavMatch, PublicUrls
from tests._apptest import url_param


def _noop(st: Any, client: Any) -> None:
    pass


PAGES = [
    PageRecord("/", "Home", _noop),
    PageRecord("/reports/monthly", "Monthly", _noop),
    PageRecord("/settings", "reports-monthly", _noop),  # a title that equals another page's slug
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Home", ("/", "Home")),
        ("/reports/monthly", ("/reports/monthly", "Monthly")),
        ("reports/monthly", ("/reports/monthly", "Monthly")),
        ("/settings/", ("/settings", "reports-monthly")),
        ("settings", ("/settings", "reports-monthly")),
        ("reports-monthly", ("/settings", "reports-monthly")),  # title beats the other page's slug
        ("monthly", ("/reports/monthly", "Monthly")),  # case-insensitive title as a last resort
        ("HOME", ("/", "Home")),
        ("  Home ", ("/", "Home")),
        ("nope", None),
        ("", None),
    ],
)
def test_match_nav_page_rules_in_order(value: str, expected: tuple[str, str] | None) -> None:
    assert match_nav_page({"page": value}, PAGES) == expected


def test_match_nav_page_takes_the_first_of_repeated_values_and_a_custom_key() -> None:
    assert match_nav_page({"p": ["settings", "Home"]}, PAGES, page_key="p") == NavMatch("/settings", "reports-monthly")
    assert match_nav_page({"page": "Home"}, PAGES, page_key="p") is None


def test_match_nav_page_accepts_path_title_pairs() -> None:
    assert match_nav_page({"page": "b"}, [("/a", "A"), ("/b", "B")]) == ("/b", "B")


def make_app() -> FluxLit:
    app = FluxLit(title="Links")

    @app.page("/")
    def home(st: Any, client: Any) -> None:
        st.write("home page")

    @app.page("/reports/monthly", title="Monthly")
    def monthly(st: Any, client: Any) -> None:
        st.write(f"monthly page; token={query_params(st).get('token')}")

    @app.page("/params")
    def params(st: Any, client: Any) -> None:
        st.write(json.dumps(query_params(st), sort_keys=True))

    return app


def texts(at: Any) -> list[str]:
    return [str(m.value) for m in at.markdown]


@pytest.mark.usefixtures("requires_streamlit_apptest")
@pytest.mark.parametrize("value", ["Monthly", "/reports/monthly", "reports-monthly", "reports/monthly"])
def test_a_page_query_value_opens_that_page_and_keeps_other_params(value: str) -> None:
    at = FluxLitTestClient(make_app()).streamlit(target="links_app:app", query_params={"page": value, "token": "t1"})
    assert texts(at) == ["monthly page; token=t1"]
    assert url_param(at, "token") == "t1"  # the invite token is still on the URL


@pytest.mark.usefixtures("requires_streamlit_apptest")
def test_an_unknown_page_value_falls_back_to_the_first_page() -> None:
    at = FluxLitTestClient(make_app()).streamlit(target="links_app:app", query_params={"page": "missing"})
    assert texts(at) == ["home page"]


@pytest.mark.usefixtures("requires_streamlit_apptest")
def test_query_params_gives_one_string_per_key_the_first_when_repeated() -> None:
    at = FluxLitTestClient(make_app()).streamlit(
        target="links_app:app", query_params={"page": "Params", "tag": ["a", "b"], "empty": ""}
    )
    assert json.loads(texts(at)[0]) == {"empty": "", "page": "Params", "tag": "a"}


def make_urls_app(**kwargs: Any) -> FluxLit:
    app = FluxLit(title="Urls", **kwargs)

    @app.page("/")
    def home(st: Any, client: Any) -> None:
        pass

    @app.page("/reports/monthly")
    def monthly(st: Any, client: Any) -> None:
        pass

    @app.api.get("/links")
    def links(request: Request) -> dict[str, str]:
        urls = app.urls
        return {
            "app": urls.app_base(request),
            "api": urls.api_base(request),
            "docs": urls.docs_url(request),
            "openapi": urls.openapi_url(request),
            "health": urls.health_url(request),
            "ready": urls.ready_url(request),
            "home": urls.page_url(request, "/"),
            "invite": urls.for_page(request, "/reports/monthly", query={"token": "a b", "skip": None}),
        }

    return app


def links(client: FluxLitTestClient, **kwargs: Any) -> dict[str, str]:
    response = client.api_get("/links", **kwargs)
    assert response.status_code == 200, response.text
    data: dict[str, str] = response.json()
    return data


def test_urls_from_the_request_host() -> None:
    got = links(FluxLitTestClient(make_urls_app()), headers={"host": "example.com:8443"})
    assert got == {
        "app": "http://example.com:8443",
        "api": "http://example.com:8443/api",
        "docs": "http://example.com:8443/api/docs",
        "openapi": "http://example.com:8443/api/openapi.json",
        "health": "http://example.com:8443/api/healthz",
        "ready": "http://example.com:8443/api/readyz",
        "home": "http://example.com:8443/",
        "invite": "http://example.com:8443/reports-monthly?token=a+b",
    }


def test_urls_respect_the_root_mount_from_the_request() -> None:
    got = links(FluxLitTestClient(make_urls_app(), root_mount="/apps/demo"), headers={"host": "h"})
    assert got["app"] == "http://h/apps/demo"
    assert got["ready"] == "http://h/apps/demo/api/readyz"
    assert got["invite"] == "http://h/apps/demo/reports-monthly?token=a+b"


def test_urls_respect_a_custom_api_prefix() -> None:
    got = links(FluxLitTestClient(make_urls_app(), api_prefix="/v1", root_mount="/m"), headers={"host": "h"})
    assert (got["app"], got["api"]) == ("http://h/m", "http://h/m/v1")


TRUST_ALL_PEERS = Settings(forwarded_allow_ips="*")  # TestClient's peer is "testclient", not an IP
FORWARDED = {
    "host": "internal:8000",
    "x-forwarded-proto": "https",
    "x-forwarded-host": "public.example, proxy2",
    "x-forwarded-prefix": "/edge",
}


def test_forwarded_host_and_prefix_are_ignored_unless_the_app_trusts_proxies() -> None:
    # The gateway already applied the trusted peer's X-Forwarded-Proto to the scheme; host and prefix stay.
    got = links(FluxLitTestClient(make_urls_app(settings=TRUST_ALL_PEERS)), headers=FORWARDED)
    assert got["app"] == "https://internal:8000"


def test_a_trusting_app_builds_links_from_the_forwarded_headers() -> None:
    client = FluxLitTestClient(make_urls_app(trust_proxy=True, settings=TRUST_ALL_PEERS))
    got = links(client, headers=FORWARDED)
    assert got["app"] == "https://public.example/edge"
    assert got["invite"] == "https://public.example/edge/reports-monthly?token=a+b"


def test_forwarded_headers_from_an_untrusted_peer_never_reach_the_links() -> None:
    # Defence in depth: the gateway drops X-Forwarded-* from peers outside FLUXLIT_FORWARDED_ALLOW_IPS.
    got = links(FluxLitTestClient(make_urls_app(trust_proxy=True)), headers=FORWARDED)
    assert got["app"] == "http://internal:8000"


def test_trust_proxy_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_TRUST_PROXY", "1")
    got = links(
        FluxLitTestClient(make_urls_app(settings=TRUST_ALL_PEERS)), headers={"host": "i", "x-forwarded-host": "o"}
    )
    assert got["app"] == "http://o"


def test_a_public_base_url_with_a_path_is_used_verbatim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_PUBLIC_BASE_URL", "https://example.com/team/app/")
    got = links(FluxLitTestClient(make_urls_app(), root_mount="/apps/demo"), headers={"host": "internal"})
    assert got["app"] == "https://example.com/team/app"
    assert got["invite"] == "https://example.com/team/app/reports-monthly?token=a+b"


def test_an_origin_only_public_base_url_gets_the_mount_appended(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_PUBLIC_BASE_URL", "https://example.com/")
    got = links(FluxLitTestClient(make_urls_app(), root_mount="/apps/demo"), headers={"host": "internal"})
    assert got["api"] == "https://example.com/apps/demo/api"


def test_an_invalid_public_base_url_says_what_to_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_PUBLIC_BASE_URL", "example.com")
    with pytest.raises(ValueError, match=r"not an absolute http\(s\) URL: try 'https://example\.com'"):
        make_urls_app().urls.app_base()


def test_without_a_request_links_are_mount_relative(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_ROOT_PATH", "/apps/demo")
    urls = make_urls_app().urls
    assert urls.page_url(None, "/reports/monthly") == "/apps/demo/reports-monthly"
    assert urls.page_url(None, "/") == "/apps/demo/"
    assert urls.page_url(None, "/not-registered", query={"x": 1}) == "/apps/demo/not-registered?x=1"


def test_a_deep_linked_home_page_is_served_at_its_stable_path() -> None:
    app = FluxLit(title="Order")

    @app.page("/first")
    def first(st: Any, client: Any) -> None:
        pass

    @app.page("/")
    def home(st: Any, client: Any) -> None:
        pass

    # "/" registered second is not Streamlit's default page, so it needs (and gets) its own path.
    assert app.urls.page_url(None, "/") == "/home"
    assert app.urls.page_url(None, "/first") == "/"


def test_urls_prefer_the_layout_the_gateway_publishes_in_scope_state() -> None:
    scope = {
        "type": "http",
        "scheme": "https",
        "path": "/m/v1/links",
        "root_path": "/m/v1",
        "headers": [(b"host", b"h")],
        "state": {"fluxlit_root_path": "/m", "fluxlit_api_prefix": "/v1"},
    }
    urls = make_urls_app().urls
    request = StarletteRequest(scope)
    assert (urls.app_base(request), urls.api_base(request)) == ("https://h/m", "https://h/m/v1")


# --- app.urls outside the gateway: no layout in scope state, so the environment, then the app's settings ---


@pytest.fixture
def no_fluxlit_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "FLUXLIT_API_PREFIX",
        "FLUXLIT_API_MOUNT_PATH",
        "FLUXLIT_ROOT_PATH",
        "FLUXLIT_PUBLIC_BASE_URL",
        "FLUXLIT_TRUST_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)


def bare_request(root_path: str = "", headers: list[tuple[bytes, bytes]] | None = None, **scope: Any) -> Any:
    """A request as an app mounted without FluxLit's gateway sees it: no layout in scope state."""
    return StarletteRequest(
        {"type": "http", "scheme": "http", "path": "/", "root_path": root_path, "headers": headers or [], **scope}
    )


@pytest.mark.usefixtures("no_fluxlit_env")
def test_an_explicit_trust_proxy_wins_over_the_app_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_TRUST_PROXY", "1")
    app = FluxLit(trust_proxy=True)
    assert PublicUrls(app, trust_proxy=False).trust_proxy is False
    assert PublicUrls(FluxLit(), trust_proxy=True).trust_proxy is True


@pytest.mark.usefixtures("no_fluxlit_env")
@pytest.mark.parametrize("variable", ["FLUXLIT_API_PREFIX", "FLUXLIT_API_MOUNT_PATH"])
def test_the_api_prefix_comes_from_the_environment_outside_the_gateway(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "/v2/")
    assert FluxLit().urls.api_prefix() == "/v2"


@pytest.mark.usefixtures("no_fluxlit_env")
def test_the_api_prefix_falls_back_to_the_app_settings_then_the_default() -> None:
    assert FluxLit(settings=Settings(api_mount_path="/rest")).urls.api_prefix() == "/rest"
    assert FluxLit().urls.api_prefix() == "/api"


@pytest.mark.usefixtures("no_fluxlit_env")
def test_the_mount_is_the_request_root_path_without_the_api_prefix() -> None:
    urls = FluxLit().urls
    assert urls.mount(bare_request("/apps/demo/api")) == "/apps/demo"
    assert urls.mount(bare_request("/apps/demo/")) == "/apps/demo"


@pytest.mark.usefixtures("no_fluxlit_env")
def test_a_request_without_host_uses_the_server_address_or_localhost() -> None:
    urls = FluxLit().urls
    assert urls.app_base(bare_request(server=("10.0.0.7", 8080))) == "http://10.0.0.7:8080"
    assert urls.app_base(bare_request()) == "http://localhost"


@pytest.mark.usefixtures("no_fluxlit_env")
def test_redoc_url_follows_the_api_base_and_fastapis_setting() -> None:
    host = [(b"host", b"example.com")]
    assert FluxLit().urls.redoc_url(bare_request(headers=host)) == "http://example.com/api/redoc"
    custom = FluxLit(fastapi_kwargs={"redoc_url": "/reference"})
    assert custom.urls.redoc_url(bare_request(headers=host)) == "http://example.com/api/reference"
