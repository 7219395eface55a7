"""Page dependency injection, exercised through real AppTest runs of the bundled entrypoint."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import streamlit

from fluxlit import Cookie, Depends, FluxLit, FluxLitTestClient, Header, Query
from fluxlit.client import ApiClient
from fluxlit.deep_links import PublicUrls
from fluxlit.pages.di import call_page, load_page_overrides
from fluxlit.testing import assert_no_streamlit_exception

pytestmark = pytest.mark.usefixtures("requires_streamlit_apptest")


def run_page(handler: Any, **streamlit_kwargs: Any) -> Any:
    app = FluxLit(title="DI")
    app.page("/")(handler)
    return FluxLitTestClient(app).streamlit(target="di_app:app", **streamlit_kwargs)


def texts(at: Any) -> list[str]:
    return [str(m.value) for m in at.markdown]


def test_depends_value_reaches_the_page() -> None:
    def current_team() -> str:
        return "core"

    def page(st: Any, client: Any, team: str = Depends(current_team)) -> None:
        st.write(f"team={team}")

    assert texts(run_page(page)) == ["team=core"]


def test_depends_is_computed_once_per_script_run_and_again_on_the_next() -> None:
    calls: list[int] = []

    def counter() -> int:
        calls.append(1)
        return len(calls)

    def needs_counter(n: int = Depends(counter)) -> int:
        return n * 10

    def page(st: Any, client: Any, a: int = Depends(counter), b: int = Depends(needs_counter)) -> None:
        st.write(f"{a} {b}")
        st.button("again")

    at = run_page(page)
    assert texts(at) == ["1 10"]
    at.button[0].click().run()
    assert texts(at) == ["2 20"]


def test_depends_without_cache_is_called_for_every_use() -> None:
    calls: list[int] = []

    def fresh() -> int:
        calls.append(1)
        return len(calls)

    def page(
        st: Any, client: Any, a: int = Depends(fresh, use_cache=False), b: int = Depends(fresh, use_cache=False)
    ) -> None:
        st.write(f"{a} {b}")

    assert texts(run_page(page)) == ["1 2"]


def test_overrides_replace_depends_header_cookie_query_and_plain_parameters() -> None:
    def expensive() -> str:
        raise AssertionError("an overridden dependency must not run")

    def page(
        st: Any,
        client: Any,
        dep: str = Depends(expensive),
        team: str | None = Header("X-Team"),
        session: str | None = Cookie("session"),
        tab: str | None = Query("tab"),
        plain: str = "default",
    ) -> None:
        st.write(json.dumps([dep, team, session, tab, plain]))

    overrides = {"dep": "D", "team": "T", "session": "S", "tab": "Q", "plain": "P"}
    at = run_page(page, page_overrides=overrides)
    assert_no_streamlit_exception(at)
    assert json.loads(texts(at)[0]) == ["D", "T", "S", "Q", "P"]


def test_absent_header_and_cookie_fall_back_to_their_defaults() -> None:
    # AppTest sends no browser request, so st.context has no headers or cookies.
    def page(
        st: Any,
        client: Any,
        team: str = Header("X-Team", default="none"),
        session: str | None = Cookie(),
    ) -> None:
        st.write(f"{team} {session}")

    assert texts(run_page(page)) == ["none None"]


def test_query_reads_the_first_value_of_the_url_parameter() -> None:
    def page(st: Any, client: Any, tab: str = Query(default="main")) -> None:
        st.write(tab)

    assert texts(run_page(page, query_params={"tab": "billing"})) == ["billing"]
    assert texts(run_page(page)) == ["main"]


def test_injectable_types_are_filled_by_annotation() -> None:
    def page(st: Any, client: Any, app: FluxLit, urls: PublicUrls, api: ApiClient) -> None:
        st.write(f"{app.title} {urls.page_url(None, '/')} {api is client}")

    assert texts(run_page(page)) == ["DI / True"]


def test_dependencies_get_st_and_client_by_name() -> None:
    def who(st: Any, client: ApiClient) -> str:
        return f"{type(client).__name__} {st.query_params.get('u', '?')}"

    def page(st: Any, client: Any, /, who: str = Depends(who)) -> None:
        st.write(who)

    assert texts(run_page(page, query_params={"u": "ada"})) == ["ApiClient ada"]


def test_generator_dependency_tears_down_after_the_page() -> None:
    events: list[str] = []

    def resource() -> Iterator[str]:
        events.append("open")
        yield "res"
        events.append("close")

    def page(st: Any, client: Any, r: str = Depends(resource)) -> None:
        events.append(f"page uses {r}")
        st.write(r)

    run_page(page)
    assert events == ["open", "page uses res", "close"]


def test_async_dependency_is_awaited() -> None:
    async def fetch() -> str:
        return "awaited"

    def page(st: Any, client: Any, v: str = Depends(fetch)) -> None:
        st.write(v)

    assert texts(run_page(page)) == ["awaited"]


def test_a_required_parameter_without_a_source_names_itself_and_the_fixes() -> None:
    def page(st: Any, client: Any, user_id: int) -> None:
        st.write(user_id)

    at = run_page(page)
    message = at.exception[0].message
    assert "needs a value for 'user_id'" in message
    assert "page_overrides" in message


def team() -> str:
    return "core"


def test_the_missing_value_error_shows_the_signature_with_its_markers_as_written() -> None:
    def page(st: Any, client: Any, user_id: int, name: str = Depends(team), who: str = Header("X-Team")) -> None:
        st.write(user_id)

    with pytest.raises(TypeError, match="needs a value for 'user_id'") as raised:
        call_page(page, streamlit, ApiClient("http://127.0.0.1:9/api"))
    assert "= Depends('team')" in str(raised.value)
    assert "= Header('X-Team')" in str(raised.value)


def test_a_dependency_cycle_is_reported() -> None:
    def a(x: Any = None) -> Any:
        return x

    def b(y: Any = Depends(a)) -> Any:  # noqa: B008
        return y

    a.__defaults__ = (Depends(b),)

    def page(st: Any, client: Any, v: Any = Depends(a)) -> None:  # noqa: B008
        st.write("unreachable")

    at = run_page(page)
    assert "cycle" in at.exception[0].message


def test_handlers_may_take_only_st() -> None:
    def page(st: Any) -> None:
        st.write("just st")

    assert texts(run_page(page)) == ["just st"]


def test_invalid_override_json_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="FLUXLIT_TEST_PAGE_OVERRIDES is not valid JSON"):
        load_page_overrides({"FLUXLIT_TEST_PAGE_OVERRIDES": "{nope", "FLUXLIT_TESTS": "1"})
    with pytest.raises(ValueError, match="must be a JSON object"):
        load_page_overrides({"FLUXLIT_TEST_PAGE_OVERRIDES": "[1]", "FLUXLIT_TESTS": "1"})
    assert load_page_overrides({}) == {}


def test_depends_needs_a_callable() -> None:
    with pytest.raises(TypeError, match="needs a callable"):
        Depends("not callable")  # type: ignore[arg-type]


def test_an_annotation_that_cannot_be_evaluated_only_loses_annotation_injection() -> None:
    def page(st: Any, client: Any, n: NotDefinedAnywhere = 3) -> None:  # type: ignore[name-defined]  # noqa: F821
        st.write(f"n={n}")

    assert texts(run_page(page)) == ["n=3"]


def test_star_parameters_are_skipped_and_positional_only_ones_are_passed_by_position() -> None:
    def labelled(st: Any, /, *extra: Any, prefix: str = "team", **more: Any) -> str:
        return f"{prefix}:{type(st).__name__}:{extra}:{more}"

    def page(st: Any, client: Any, *args: Any, label: str = Depends(labelled), **kwargs: Any) -> None:
        st.write(f"{label} {args} {kwargs}")

    assert texts(run_page(page)) == ["team:module:():{} () {}"]


def test_an_async_generator_dependency_is_refused_by_name() -> None:
    async def session() -> AsyncIterator[str]:
        yield "s"

    def page(st: Any, client: Any, s: str = Depends(session)) -> None:
        st.write(s)

    at = run_page(page)
    [shown] = at.exception
    assert "is an async generator: use a plain generator" in shown.message
    assert "session()" in shown.message


def test_an_async_dependency_inside_a_running_event_loop_is_an_error() -> None:
    async def user() -> str:
        return "ada"

    def page(st: Any, client: Any, who: str = Depends(user)) -> str:
        return who

    async def call_from_async_code() -> str:
        return str(call_page(page, streamlit, ApiClient("http://127.0.0.1:9/api")))

    with pytest.raises(TypeError, match=r"is async but an event loop is already running in this thread"):
        asyncio.run(call_from_async_code())
    assert call_page(page, streamlit, ApiClient("http://127.0.0.1:9/api")) == "ada"
