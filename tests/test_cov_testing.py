"""FluxLitTestClient helpers: every verb, the docs assertions, select_page before a first run, odd targets."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from fluxlit import FluxLit, FluxLitTestClient
from fluxlit.streamlit.apptest import FluxLitAppTest, synthetic_module
from fluxlit.testing import select_page
from tests._apptest import url_param


def make_verbs_app() -> FluxLit:
    app = FluxLit(title="Verbs")

    @app.api.api_route("/echo", methods=["POST", "PUT", "PATCH"])
    async def echo(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    return app


def test_api_url_accepts_a_path_without_its_leading_slash() -> None:
    client = FluxLitTestClient(FluxLit(), root_mount="/m")
    assert client.api_url("users") == "/m/api/users"


@pytest.mark.parametrize("method", ["api_post", "api_put", "api_patch"])
def test_each_verb_helper_sends_its_method_under_the_api_prefix(method: str) -> None:
    client = FluxLitTestClient(make_verbs_app())
    response = getattr(client, method)("/echo", json={"verb": method})
    assert (response.status_code, response.json()) == (200, {"verb": method})
    assert client.api_get("/echo").status_code == 405


def test_openapi_says_how_to_turn_it_back_on_when_disabled() -> None:
    client = FluxLitTestClient(FluxLit(fastapi_kwargs={"openapi_url": None}))
    with pytest.raises(AssertionError, match=r"GET /api/openapi.json answered 404.*openapi_url disabled"):
        client.openapi()


def test_docs_check_refuses_a_document_that_is_not_openapi_3() -> None:
    api = FastAPI(openapi_url=None)

    @api.get("/openapi.json")
    async def not_openapi() -> dict[str, str]:
        return {"swagger": "2.0"}

    with pytest.raises(
        AssertionError,
        match=r"/api/openapi.json is not an OpenAPI 3 document \(missing \['openapi', 'info', 'paths'\]\)",
    ):
        FluxLitTestClient(api).assert_docs_available()


def test_docs_check_fails_when_the_docs_page_is_off() -> None:
    client = FluxLitTestClient(FluxLit(fastapi_kwargs={"docs_url": None}))
    with pytest.raises(AssertionError, match=r"GET /api/docs answered 404; .*docs_url disabled"):
        client.assert_docs_available()


def test_select_page_without_an_apptest_needs_a_target() -> None:
    with pytest.raises(TypeError, match="needs target= to start a new AppTest"):
        FluxLitTestClient(FluxLit()).select_page(None, "Home")


def two_pages() -> FluxLit:
    app = FluxLit(title="Two")

    @app.page("/")
    def home(st: Any, client: Any) -> None:
        st.write("home")

    @app.page("/second", title="Second")
    def second(st: Any, client: Any) -> None:
        st.write("second")

    return app


@pytest.mark.usefixtures("requires_streamlit_apptest")
def test_select_page_before_the_first_run_opens_the_page_as_a_deep_link() -> None:
    at = FluxLitAppTest(
        {"FLUXLIT_APP": "never_run_app:app", "FLUXLIT_TESTS": "1"},
        modules={"never_run_app": synthetic_module("never_run_app", "app", two_pages())},
    )
    assert at.run_count == 0
    select_page(at, "Second")
    assert [str(m.value) for m in at.markdown] == ["second"]
    assert url_param(at, "page") == "Second"


@pytest.mark.usefixtures("requires_streamlit_apptest")
def test_a_dotted_target_under_a_plain_module_is_served_from_memory() -> None:
    # json.decoder is a module, not a package: nothing can live under it, so the client's app stands in.
    at = FluxLitTestClient(two_pages()).streamlit(target="json.decoder.not_here:app")
    assert [str(m.value) for m in at.markdown] == ["home"]
