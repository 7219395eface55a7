"""The Streamlit child's layout: one object from the supervisor's JSON and the seed's variables, in one order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fluxlit import FluxLit
from fluxlit.client import ApiClient
from fluxlit.config.child_layout import LAYOUT_ENV, ChildLayout, ChildLayoutError, child_layout
from fluxlit.config.settings import Settings
from fluxlit.errors import ConfigError
from fluxlit.runtime.streamlit_child import child_environment

_SEED_VARS = (
    "FLUXLIT_APP",
    "FLUXLIT_API_PREFIX",
    "FLUXLIT_API_MOUNT_PATH",
    "FLUXLIT_ROOT_PATH",
    "FLUXLIT_INTERNAL_API_BASE",
    "FLUXLIT_TRUST_PROXY",
    "FLUXLIT_PUBLIC_BASE_URL",
    LAYOUT_ENV,
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _SEED_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_with_nothing_set_the_layout_knows_only_the_defaults() -> None:
    layout = child_layout({})
    assert layout == ChildLayout()
    assert (layout.app, layout.api_prefix, layout.root_path) == ("", None, None)
    assert layout.internal_api_base == "http://127.0.0.1:8000/api"


def test_the_supervisors_layout_round_trips_through_the_childs_environment() -> None:
    written = ChildLayout("app:app", "/v1", "/apps/demo", "http://127.0.0.1:9/apps/demo/v1", True, "https://e.com")
    assert child_layout(written.environment()) == written
    assert child_layout({LAYOUT_ENV: written.environment()[LAYOUT_ENV]}) == written


def test_a_seed_variable_beats_the_serialised_layout() -> None:
    written = ChildLayout(app="app:app", api_prefix="/v1", internal_api_base="http://127.0.0.1:9/v1")
    env = {LAYOUT_ENV: written.environment()[LAYOUT_ENV], "FLUXLIT_API_PREFIX": "/v2/", "FLUXLIT_APP": "other:app"}
    layout = child_layout(env)
    assert (layout.app, layout.api_prefix, layout.internal_api_base) == ("other:app", "/v2", "http://127.0.0.1:9/v1")


def test_the_references_api_mount_path_is_read_when_the_seed_name_is_unset() -> None:
    assert child_layout({"FLUXLIT_API_MOUNT_PATH": "/backend"}).api_prefix == "/backend"
    both = {"FLUXLIT_API_MOUNT_PATH": "/backend", "FLUXLIT_API_PREFIX": "/api2"}
    assert child_layout(both).api_prefix == "/api2"


def test_an_empty_variable_counts_as_unset() -> None:
    written = ChildLayout(root_path="/apps/demo")
    env = {LAYOUT_ENV: written.environment()[LAYOUT_ENV], "FLUXLIT_ROOT_PATH": ""}
    assert child_layout(env).root_path == "/apps/demo"


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("yes", True), ("0", False), ("nope", False)])
def test_trust_proxy_reads_the_usual_truthy_spellings(value: str, expected: bool) -> None:
    assert child_layout({"FLUXLIT_TRUST_PROXY": value}).trust_proxy is expected


def test_a_bad_prefix_names_the_variable_that_held_it() -> None:
    with pytest.raises(ConfigError, match=r"FLUXLIT_API_MOUNT_PATH='api\?x'"):
        child_layout({"FLUXLIT_API_MOUNT_PATH": "api?x"})
    with pytest.raises(ConfigError, match=r"FLUXLIT_CHILD_LAYOUT.root_path='x'"):
        child_layout({LAYOUT_ENV: json.dumps({"root_path": "x"})})


def test_a_public_base_url_that_is_not_absolute_is_a_value_error_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"FLUXLIT_PUBLIC_BASE_URL='example.com' is not an absolute http\(s\) URL"):
        child_layout({"FLUXLIT_PUBLIC_BASE_URL": "example.com"})


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"colour": "blue"}'])
def test_a_serialised_layout_that_is_not_one_says_to_unset_it(text: str) -> None:
    with pytest.raises(ChildLayoutError, match=r"FLUXLIT_CHILD_LAYOUT.*unset it, `fluxlit serve` writes it"):
        child_layout({LAYOUT_ENV: text})


def test_a_changed_variable_is_seen_on_the_next_read(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FLUXLIT_ROOT_PATH", "/one")
    assert child_layout().root_path == "/one"
    clean_env.setenv("FLUXLIT_ROOT_PATH", "/two")
    assert child_layout().root_path == "/two"


def test_the_childs_environment_comes_from_the_settings_through_one_layout(tmp_path: Path) -> None:
    settings = Settings(port=8123, api_mount_path="/v1", root_path="/apps/demo", trust_proxy=True)
    env = child_environment(settings)
    layout = child_layout(env)
    assert layout == ChildLayout(
        app=layout.app,
        api_prefix="/v1",
        root_path="/apps/demo",
        internal_api_base="http://127.0.0.1:8123/apps/demo/v1",
        trust_proxy=True,
    )
    assert env["FLUXLIT_API_PREFIX"] == "/v1"  # the seed's names stay, for user code that reads them


def test_pages_links_and_the_api_client_all_read_the_serialised_layout(clean_env: pytest.MonkeyPatch) -> None:
    written = ChildLayout(api_prefix="/v1", root_path="/apps/demo", internal_api_base="http://127.0.0.1:9/apps/demo/v1")
    clean_env.setenv(LAYOUT_ENV, written.environment()[LAYOUT_ENV])
    urls = FluxLit(title="Layout").urls
    assert (urls.api_prefix(), urls.mount(), urls.api_base()) == ("/v1", "/apps/demo", "/apps/demo/v1")
    with ApiClient() as client:
        assert client.base_url == "http://127.0.0.1:9/apps/demo/v1"
