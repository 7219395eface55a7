"""Page dependency injection corners: reprs, unevaluable annotations, *args, positional-only, async misuse."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import streamlit

from fluxlit import Depends, FluxLit, FluxLitTestClient, Header
from fluxlit.client import ApiClient
from fluxlit.pages.di import call_page


def texts(at: Any) -> list[str]:
    return [str(m.value) for m in at.markdown]


def run_page(handler: Any, target: str) -> Any:
    app = FluxLit(title="DI")
    app.page("/")(handler)
    return FluxLitTestClient(app).streamlit(target=target)


def team() -> str:
    return "core"


def test_markers_repr_name_what_they_inject() -> None:
    assert repr(Depends(team)) == "Depends('team')"
    assert repr(Header("X-Team")) == "Header('X-Team')"


@pytest.mark.usefixtures("requires_streamlit_apptest")
def test_an_annotation_that_cannot_be_evaluated_only_loses_annotation_injection() -> None:
    def page(st: Any, client: Any, n: NotDefinedAnywhere = 3) -> None:  # type: ignore[name-defined]  # noqa: F821
        st.write(f"n={n}")

    assert texts(run_page(page, "unevaluable_app:app")) == ["n=3"]


@pytest.mark.usefixtures("requires_streamlit_apptest")
def test_star_parameters_are_skipped_and_positional_only_ones_are_passed_by_position() -> None:
    def labelled(st: Any, /, *extra: Any, prefix: str = "team", **more: Any) -> str:
        return f"{prefix}:{type(st).__name__}:{extra}:{more}"

    def page(st: Any, client: Any, *args: Any, label: str = Depends(labelled), **kwargs: Any) -> None:
        st.write(f"{label} {args} {kwargs}")

    assert texts(run_page(page, "star_params_app:app")) == ["team:module:():{} () {}"]


@pytest.mark.usefixtures("requires_streamlit_apptest")
def test_an_async_generator_dependency_is_refused_by_name() -> None:
    async def session() -> AsyncIterator[str]:
        yield "s"

    def page(st: Any, client: Any, s: str = Depends(session)) -> None:
        st.write(s)

    at = run_page(page, "async_gen_dep_app:app")
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
