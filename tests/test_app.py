"""The FluxLit app object and its page registry."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from fluxlit import FluxLit, Settings


def test_api_is_a_real_fastapi_titled_like_the_app() -> None:
    app = FluxLit(title="Shop")
    assert isinstance(app.api, FastAPI)
    assert app.api.title == "Shop"


def test_title_falls_back_to_settings_then_default() -> None:
    assert FluxLit(settings=Settings(title="From settings")).title == "From settings"
    assert FluxLit().title == "FluxLit"


def test_fastapi_kwargs_reach_fastapi() -> None:
    app = FluxLit(fastapi_kwargs={"version": "9.9", "docs_url": None})
    assert (app.api.version, app.api.docs_url) == ("9.9", None)


def test_pages_register_in_order_with_defaults() -> None:
    app = FluxLit()

    @app.page("/")
    def home(st: object, client: object) -> None:
        """Start here.

        More text."""

    @app.page("/reports/monthly", title="Monthly", icon="📈")
    def monthly_report(st: object, client: object) -> None: ...

    assert [(p.path, p.title, p.slug, p.icon) for p in app.pages] == [
        ("/", "Home", "", None),
        ("/reports/monthly", "Monthly", "reports-monthly", "📈"),
    ]
    assert app.pages[0].description == "Start here."
    assert app.pages[0].handler is home


@pytest.mark.parametrize("second", ["/a", "/a/", "a"])
def test_duplicate_page_paths_raise_naming_both(second: str) -> None:
    app = FluxLit()

    @app.page("/a")
    def first(st: object, client: object) -> None: ...

    with pytest.raises(ValueError, match=r"must start with|clashes with '/a' already registered by .*first"):

        @app.page(second)
        def other(st: object, client: object) -> None: ...


def test_slug_clash_between_different_paths_is_refused() -> None:
    app = FluxLit()
    app.page("/a/b")(lambda st, client: None)
    with pytest.raises(ValueError, match="clashes with '/a/b'"):
        app.page("/a-b")(lambda st, client: None)
