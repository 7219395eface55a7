"""The sidebar's entries: sidebar order, the deep-linked default, and a URL path for the home page."""

from __future__ import annotations

from typing import Any

from fluxlit import FluxLit
from fluxlit.navigation import nav_entries


def noop_page(st: Any, client: Any) -> None:
    pass


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
