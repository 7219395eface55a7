"""URL-session helpers are no-ops when switched off or when the URL carries no usable session id."""

from __future__ import annotations

from typing import Any

import pytest

from fluxlit import FluxLit, FluxLitTestClient
from fluxlit.url_session import InMemorySessionStore, hydrate_url_session, persist_url_session

pytestmark = pytest.mark.usefixtures("requires_streamlit_apptest")


def test_a_negative_default_ttl_is_refused() -> None:
    with pytest.raises(ValueError, match=r"default_ttl_seconds=-1 must be 0 \(no expiry\) or more"):
        InMemorySessionStore(default_ttl_seconds=-1)


def run_helpers(target: str) -> list[str]:
    store = InMemorySessionStore()
    app = FluxLit(title="Helpers")

    @app.page("/")
    def page(st: Any, client: Any) -> None:
        st.session_state["kept"] = "x"
        st.write(f"hydrated={hydrate_url_session(st, store)} persisted={persist_url_session(st, store)}")

    at = FluxLitTestClient(app).streamlit(target=target)
    return [str(m.value) for m in at.markdown]


def test_switched_off_the_helpers_report_false() -> None:
    assert run_helpers("helpers_off_app:app") == ["hydrated=False persisted=False"]


def test_without_a_session_id_in_the_url_nothing_is_loaded_or_saved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_FORCE_URL_SESSION_IN_TESTS", "1")
    assert run_helpers("helpers_on_app:app") == ["hydrated=False persisted=False"]
