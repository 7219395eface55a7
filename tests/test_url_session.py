"""URL sessions: the in-memory store (LRU, TTL), the env switches, and a reload that keeps session state."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from fluxlit import FluxLit, FluxLitTestClient
from fluxlit.url_session import (
    InMemorySessionStore,
    SessionStore,
    ensure_url_session,
    hydrate_url_session,
    new_session_id,
    persist_url_session,
    url_session_enabled,
)
from tests._apptest import url_param


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_store_satisfies_the_protocol_and_copies_values() -> None:
    store = InMemorySessionStore()
    assert isinstance(store, SessionStore)
    data = {"a": 1}
    store.set("s", data)
    data["a"] = 2
    got = store.get("s")
    assert got == {"a": 1}
    assert got is not None
    got["a"] = 3
    assert store.get("s") == {"a": 1}


def test_eviction_drops_the_least_recently_used_not_the_oldest_inserted() -> None:
    store = InMemorySessionStore(max_entries=2)
    store.set("first", {"n": 1})
    store.set("second", {"n": 2})
    assert store.get("first") == {"n": 1}  # a read makes "first" the most recently used
    store.set("third", {"n": 3})
    assert store.get("second") is None
    assert store.get("first") == {"n": 1}
    assert store.get("third") == {"n": 3}
    assert len(store) == 2


def test_entries_expire_after_their_ttl_and_zero_means_never() -> None:
    clock = FakeClock()
    store = InMemorySessionStore(default_ttl_seconds=60, clock=clock)
    store.set("default", {})
    store.set("short", {}, ttl_seconds=5)
    store.set("forever", {}, ttl_seconds=0)
    clock.now += 5
    assert store.get("short") is None
    assert store.get("default") == {}
    clock.now += 10_000
    assert store.get("default") is None
    assert store.get("forever") == {}


def test_delete_and_bad_arguments() -> None:
    store = InMemorySessionStore()
    store.set("s", {"x": 1})
    store.delete("s")
    store.delete("never-there")
    assert store.get("s") is None
    with pytest.raises(ValueError, match="max_entries=0"):
        InMemorySessionStore(max_entries=0)
    with pytest.raises(ValueError, match="ttl_seconds=-1"):
        store.set("s", {}, ttl_seconds=-1)


def test_a_negative_default_ttl_is_refused() -> None:
    with pytest.raises(ValueError, match=r"default_ttl_seconds=-1 must be 0 \(no expiry\) or more"):
        InMemorySessionStore(default_ttl_seconds=-1)


def test_the_store_repr_never_shows_session_ids() -> None:
    store = InMemorySessionStore()
    sid = new_session_id()
    store.set(sid, {})
    assert sid not in repr(store)


def test_session_ids_are_long_and_unique() -> None:
    ids = {new_session_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) >= 43 for i in ids)


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, True),
        ({"FLUXLIT_TESTS": "1"}, False),
        ({"FLUXLIT_TESTS": "1", "FLUXLIT_FORCE_URL_SESSION_IN_TESTS": "1"}, True),
        ({"FLUXLIT_DISABLE_URL_SESSION": "1"}, False),
        ({"FLUXLIT_TESTS": "1", "FLUXLIT_FORCE_URL_SESSION_IN_TESTS": "1", "FLUXLIT_DISABLE_URL_SESSION": "1"}, False),
    ],
)
def test_env_switches(env: dict[str, str], enabled: bool) -> None:
    assert url_session_enabled(env) is enabled


STORE = InMemorySessionStore()


def make_counter_app() -> FluxLit:
    app = FluxLit(title="Counter")

    @app.page("/")
    def counter(st: Any, client: Any) -> None:
        sid = ensure_url_session(st, STORE, initial={"count": 0})
        if st.button("Add"):
            st.session_state["count"] = st.session_state.get("count", 0) + 1
            persist_url_session(st, STORE)
        st.write(f"count={st.session_state.get('count', 'unset')} session={'on' if sid else 'off'}")

    return app


def texts(at: Any) -> list[str]:
    return [str(m.value) for m in at.markdown]


@pytest.mark.usefixtures("requires_streamlit_apptest")
def test_helpers_are_no_ops_in_tests_by_default() -> None:
    at = FluxLitTestClient(make_counter_app()).streamlit(target="counter_app:app")
    assert texts(at) == ["count=unset session=off"]
    assert "fluxlit_sid" not in at.query_params


@pytest.mark.usefixtures("requires_streamlit_apptest")
def test_a_new_browser_session_with_the_url_gets_the_state_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FLUXLIT_FORCE_URL_SESSION_IN_TESTS", "1")
    caplog.set_level(logging.DEBUG)
    tc = FluxLitTestClient(make_counter_app())
    first = tc.streamlit(target="counter_app:app")
    sid = url_param(first, "fluxlit_sid")
    assert texts(first) == ["count=0 session=on"]
    first.button[0].click().run()
    first.button[0].click().run()
    assert texts(first) == ["count=2 session=on"]

    reloaded = tc.streamlit(target="counter_app:app", query_params={"fluxlit_sid": sid})
    assert texts(reloaded) == ["count=2 session=on"]
    assert url_param(reloaded, "fluxlit_sid") == sid
    assert sid not in caplog.text


@pytest.mark.usefixtures("requires_streamlit_apptest")
@pytest.mark.parametrize("crafted", ["attacker-chosen-id-that-the-store-never-issued-0000", "short", "a b"])
def test_an_unknown_or_malformed_session_id_is_replaced_not_adopted(
    monkeypatch: pytest.MonkeyPatch, crafted: str
) -> None:
    monkeypatch.setenv("FLUXLIT_FORCE_URL_SESSION_IN_TESTS", "1")
    at = FluxLitTestClient(make_counter_app()).streamlit(
        target="counter_app:app", query_params={"fluxlit_sid": crafted}
    )
    assert texts(at) == ["count=0 session=on"]
    assert url_param(at, "fluxlit_sid") != crafted
    assert STORE.get(crafted) is None


@pytest.mark.usefixtures("requires_streamlit_apptest")
@pytest.mark.parametrize(("merge", "expected"), [(True, "mine"), (False, "stored")])
def test_hydrate_merges_under_or_over_existing_state(
    monkeypatch: pytest.MonkeyPatch, merge: bool, expected: str
) -> None:
    monkeypatch.setenv("FLUXLIT_FORCE_URL_SESSION_IN_TESTS", "1")
    store = InMemorySessionStore()
    sid = new_session_id()
    store.set(sid, {"name": "stored", "extra": 1})
    app = FluxLit(title="Hydrate")

    @app.page("/")
    def page(st: Any, client: Any) -> None:
        st.session_state.setdefault("name", "mine")
        found = hydrate_url_session(st, store, merge=merge)
        st.write(f"{found} {st.session_state['name']} {st.session_state.get('extra')}")

    at = FluxLitTestClient(app).streamlit(target="hydrate_app:app", query_params={"fluxlit_sid": sid})
    assert texts(at) == [f"True {expected} 1"]


@pytest.mark.usefixtures("requires_streamlit_apptest")
def test_persist_keeps_only_public_keys_or_the_ones_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_FORCE_URL_SESSION_IN_TESTS", "1")
    store = InMemorySessionStore()
    sid = new_session_id()
    store.set(sid, {})
    app = FluxLit(title="Persist")

    @app.page("/")
    def page(st: Any, client: Any) -> None:
        st.session_state.update({"a": 1, "b": 2, "_private": 3})
        persist_url_session(st, store)
        st.write(str(sorted(store.get(sid) or {})))
        persist_url_session(st, store, keys=["b", "_private", "missing"])
        st.write(str(sorted(store.get(sid) or {})))

    at = FluxLitTestClient(app).streamlit(target="persist_app:app", query_params={"fluxlit_sid": sid})
    assert texts(at) == ["['a', 'b']", "['b']"]


def hydrated_and_persisted(target: str) -> list[str]:
    """What hydrate_url_session and persist_url_session report on a page's first run, from a fresh store."""
    store = InMemorySessionStore()
    app = FluxLit(title="Helpers")

    @app.page("/")
    def page(st: Any, client: Any) -> None:
        st.session_state["kept"] = "x"
        st.write(f"hydrated={hydrate_url_session(st, store)} persisted={persist_url_session(st, store)}")

    return texts(FluxLitTestClient(app).streamlit(target=target))


@pytest.mark.usefixtures("requires_streamlit_apptest")
def test_switched_off_the_helpers_report_false() -> None:
    assert hydrated_and_persisted("helpers_off_app:app") == ["hydrated=False persisted=False"]


@pytest.mark.usefixtures("requires_streamlit_apptest")
def test_without_a_session_id_in_the_url_nothing_is_loaded_or_saved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_FORCE_URL_SESSION_IN_TESTS", "1")
    assert hydrated_and_persisted("helpers_on_app:app") == ["hydrated=False persisted=False"]
