"""Small public surfaces of the app object, the API client, the page registry and the nav entries."""

from __future__ import annotations

from typing import Any

from fluxlit import FluxLit
from fluxlit.client import ApiClient
from fluxlit.navigation import nav_entries


def noop_page(st: Any, client: Any) -> None:
    pass


def test_app_repr_names_its_title_and_pages_in_sidebar_order() -> None:
    app = FluxLit(title="Shop")
    app.page("/")(noop_page)
    app.page("/orders/open", title="Open orders")(noop_page)
    assert repr(app) == "FluxLit(title='Shop', pages=['/', '/orders/open'])"


def test_api_client_repr_shows_its_base_url_without_a_trailing_slash() -> None:
    assert repr(ApiClient("http://127.0.0.1:9/api/")) == "ApiClient(base_url='http://127.0.0.1:9/api')"


def test_an_app_without_pages_has_no_nav_entries() -> None:
    assert nav_entries(FluxLit().pages, {"page": "anything"}) == []


def test_the_home_page_gets_a_url_path_no_other_page_took() -> None:
    app = FluxLit()
    for path in ("/", "/home", "/index", "/main", "/start"):
        app.page(path, title=path)(noop_page)
    entries = nav_entries(app.pages, {"page": "/start"})
    assert [(e.url_path, e.default) for e in entries] == [
        ("fluxlit-home", False),
        ("home", False),
        ("index", False),
        ("main", False),
        ("start", True),
    ]
    assert entries[0].public_path == "fluxlit-home"
