"""FluxLitTestClient: API helpers under the gateway's prefix and docs checks, and streamlit(): AppTest runs of the
bundled entrypoint with the real gateway behind the pages."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from fluxlit import FluxLit, FluxLitTestClient
from fluxlit.client import ApiClient
from fluxlit.streamlit.apptest import FluxLitAppTest, synthetic_module
from fluxlit.streamlit.command import streamlit_main_path
from fluxlit.testing import apptest_assert_no_errors, apptest_select_page, assert_no_streamlit_exception, select_page
from tests._apptest import url_param

pytestmark = pytest.mark.usefixtures("requires_streamlit_apptest")


def texts(at: Any) -> list[str]:
    return [str(m.value) for m in at.markdown]


# --- API helpers and docs checks ---


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


# --- streamlit(): AppTest runs ---


def test_page_with_dep(tmp_path, monkeypatch):
    # The seed page's example, verbatim, plus the check that the override reached the page.
    app = FluxLit(title="T")

    @app.page("/")
    def home(st, client, trace_id: str = ""):  # noqa: ARG001, RUF100 (verbatim from the seed)
        st.write(trace_id)

    monkeypatch.setenv("FLUXLIT_TEST_PAGE_OVERRIDES", json.dumps({"trace_id": "test-trace"}))
    at = FluxLitTestClient(app).streamlit(target="my_app:app", extra_sys_path=tmp_path)
    assert at.get("markdown")
    assert "test-trace" in at.markdown[0].value


def make_users_app() -> FluxLit:
    app = FluxLit(title="Users")

    @app.api.get("/users")
    def users() -> list[dict[str, str]]:
        return [{"name": "Ada"}]

    @app.page("/")
    def home(st: Any, client: ApiClient) -> None:
        st.title("Users")
        st.write(", ".join(u["name"] for u in client.get("/users").json()))
        if st.button("Reload"):
            st.write("reloaded " + client.get("/users").json()[0]["name"])

    return app


def test_pages_get_real_api_data_through_the_in_process_gateway() -> None:
    at = FluxLitTestClient(make_users_app()).streamlit(target="users_app_not_on_disk:app")
    assert_no_streamlit_exception(at)
    assert at.title[0].value == "Users"
    assert texts(at) == ["Ada"]


def test_every_later_run_still_sees_the_app_and_the_gateway() -> None:
    at = FluxLitTestClient(make_users_app()).streamlit(target="users_app_not_on_disk:app")
    at.button[0].click().run()
    assert_no_streamlit_exception(at)
    assert texts(at) == ["Ada", "reloaded Ada"]


def test_the_environment_is_restored_after_each_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLUXLIT_APP", raising=False)
    monkeypatch.setenv("FLUXLIT_TESTS", "0")
    before_modules = set(sys.modules)
    FluxLitTestClient(make_users_app()).streamlit(target="users_app_not_on_disk:app")
    assert "FLUXLIT_APP" not in os.environ
    assert os.environ["FLUXLIT_TESTS"] == "0"
    assert "users_app_not_on_disk" not in sys.modules
    assert "users_app_not_on_disk" not in before_modules


def test_a_target_on_disk_is_imported_from_extra_sys_path(tmp_path: Path) -> None:
    (tmp_path / "disk_app_for_apptest.py").write_text(
        "from fluxlit import FluxLit\n"
        "app = FluxLit(title='From disk')\n"
        "@app.page('/')\n"
        "def home(st, client):\n"
        "    st.write('served from the file')\n"
    )
    in_memory = FluxLit(title="In memory")
    try:
        at = FluxLitTestClient(in_memory).streamlit(target="disk_app_for_apptest:app", extra_sys_path=tmp_path)
    finally:
        sys.modules.pop("disk_app_for_apptest", None)
    assert texts(at) == ["served from the file"]
    assert str(tmp_path) not in sys.path


def test_a_factory_target_gets_the_in_memory_app() -> None:
    at = FluxLitTestClient(make_users_app()).streamlit(target="factory_not_on_disk:create()")
    assert texts(at) == ["Ada"]


def test_page_overrides_argument_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    app = FluxLit(title="T")

    @app.page("/")
    def home(st: Any, client: Any, a: str = "", b: str = "") -> None:
        st.write(f"{a}/{b}")

    monkeypatch.setenv("FLUXLIT_TEST_PAGE_OVERRIDES", json.dumps({"a": "env-a", "b": "env-b"}))
    at = FluxLitTestClient(app).streamlit(target="overrides_app:app", page_overrides={"b": "arg-b"})
    assert texts(at) == ["env-a/arg-b"]
    assert json.loads(os.environ["FLUXLIT_TEST_PAGE_OVERRIDES"]) == {"a": "env-a", "b": "env-b"}


def test_page_overrides_must_be_json_values() -> None:
    app = FluxLit(title="T")
    with pytest.raises(TypeError, match="JSON values"):
        FluxLitTestClient(app).streamlit(target="t_app:app", page_overrides={"x": object()})


def test_an_explicit_internal_api_base_is_used_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    app = FluxLit(title="T")
    seen: list[str] = []

    def fake_request(self: ApiClient, method: str, path: str, **kwargs: Any) -> Any:
        seen.append(self.url(path))
        raise RuntimeError("stop here")

    monkeypatch.setattr(ApiClient, "request", fake_request)

    @app.page("/")
    def home(st: Any, client: ApiClient) -> None:
        try:
            client.get("/x")
        except RuntimeError:
            st.write("intercepted")

    at = FluxLitTestClient(app).streamlit(target="base_app:app", internal_api_base="http://127.0.0.1:1/api")
    assert texts(at) == ["intercepted"]
    assert seen == ["http://127.0.0.1:1/api/x"]


def test_query_params_seed_the_first_run() -> None:
    app = FluxLit(title="T")

    @app.page("/")
    def home(st: Any, client: Any) -> None:
        st.write(st.query_params.get("token", "none"))

    at = FluxLitTestClient(app).streamlit(target="qp_app:app", query_params={"token": "abc"})
    assert texts(at) == ["abc"]


def test_pages_under_a_root_mount_reach_the_api_through_it() -> None:
    at = FluxLitTestClient(make_users_app()).with_root_path("/content/42").streamlit(target="mounted_app:app")
    assert_no_streamlit_exception(at)
    assert texts(at) == ["Ada"]


def test_a_dotted_target_under_a_plain_module_is_served_from_memory() -> None:
    # json.decoder is a module, not a package: nothing can live under it, so the client's app stands in.
    at = FluxLitTestClient(make_two_page_app()).streamlit(target="json.decoder.not_here:app")
    assert texts(at) == ["home page"]


def make_two_page_app() -> FluxLit:
    app = FluxLit(title="Two")

    @app.page("/")
    def home(st: Any, client: Any) -> None:
        st.session_state["visited_home"] = True
        st.write("home page")

    @app.page("/reports/monthly", title="Monthly Reports")
    def monthly(st: Any, client: Any, who: str = "nobody") -> None:
        st.write(f"monthly for {who}; visited home: {st.session_state.get('visited_home', False)}")

    return app


def test_select_page_switches_after_the_first_run_and_keeps_session_state() -> None:
    tc = FluxLitTestClient(make_two_page_app())
    at = tc.streamlit(target="two_app:app")
    assert texts(at) == ["home page"]
    tc.select_page(at, "Monthly Reports", target="two_app:app")
    assert texts(at) == ["monthly for nobody; visited home: True"]
    select_page(at, "/", page_overrides={"who": "ada"})
    assert texts(at) == ["home page"]
    select_page(at, "reports-monthly")
    assert texts(at) == ["monthly for ada; visited home: True"]


def test_select_page_without_an_apptest_starts_one_on_the_deep_link() -> None:
    tc = FluxLitTestClient(make_two_page_app())
    at = tc.select_page(None, "reports-monthly", target="two_app:app", page_overrides={"who": "bob"})
    assert texts(at) == ["monthly for bob; visited home: False"]


def test_select_page_without_an_apptest_needs_a_target() -> None:
    with pytest.raises(TypeError, match="needs target= to start a new AppTest"):
        FluxLitTestClient(FluxLit()).select_page(None, "Home")


def test_select_page_before_the_first_run_opens_the_page_as_a_deep_link() -> None:
    at = FluxLitAppTest(
        {"FLUXLIT_APP": "never_run_app:app", "FLUXLIT_TESTS": "1"},
        modules={"never_run_app": synthetic_module("never_run_app", "app", make_two_page_app())},
    )
    assert at.run_count == 0
    select_page(at, "Monthly Reports")
    assert texts(at) == ["monthly for nobody; visited home: False"]
    assert url_param(at, "page") == "Monthly Reports"


def test_select_page_names_the_pages_when_nothing_matches() -> None:
    at = FluxLitTestClient(make_two_page_app()).streamlit(target="two_app:app")
    select_page(at, "Nope")
    with pytest.raises(AssertionError, match=r"no page matches 'Nope'.*'Home', 'Monthly Reports'"):
        assert_no_streamlit_exception(at)


def test_assert_no_streamlit_exception_reports_the_page_error() -> None:
    app = FluxLit(title="T")

    @app.page("/")
    def home(st: Any, client: Any) -> None:
        raise ValueError("page blew up")

    at = FluxLitTestClient(app).streamlit(target="boom_app:app")
    with pytest.raises(AssertionError, match="page blew up"):
        FluxLitTestClient.assert_no_streamlit_exception(at)


@pytest.mark.parametrize(
    "check", [assert_no_streamlit_exception, apptest_assert_no_errors, FluxLitTestClient.assert_no_streamlit_exception]
)
def test_every_clean_run_check_also_fails_on_error_boxes_as_in_fluxlit_0_13(check: Any) -> None:
    app = FluxLit(title="T")

    @app.page("/")
    def home(st: Any, client: Any) -> None:
        st.error("visible problem")

    at = FluxLitTestClient(app).streamlit(target="err_app:app")
    with pytest.raises(AssertionError, match=r"showed 1 error\(s\): \['visible problem'\]"):
        check(at)


def test_a_clean_run_passes_every_check() -> None:
    app = FluxLit(title="T")

    @app.page("/")
    def home(st: Any, client: Any) -> None:
        st.write("fine")

    at = FluxLitTestClient(app).streamlit(target="fine_app:app")
    assert_no_streamlit_exception(at)
    apptest_assert_no_errors(at)


def test_apptest_select_page_takes_fluxlit_0_13s_arguments() -> None:
    tc = FluxLitTestClient(make_two_page_app())
    at = tc.streamlit(target="two_app:app")
    apptest_select_page(at, tc, target="two_app:app", page="Monthly Reports", page_overrides={"who": "eve"})
    assert texts(at) == ["monthly for eve; visited home: True"]


def test_select_page_drives_a_plain_apptest_of_the_entrypoint_with_the_clients_api() -> None:
    app = make_two_page_app()

    @app.page("/count", title="Count")
    def count(st: Any, client: Any) -> None:
        st.write(f"api says {client.get('/healthz').json()['status']}")

    from streamlit.testing.v1 import AppTest

    tc = FluxLitTestClient(app)
    at = AppTest.from_file(str(streamlit_main_path()))
    tc.select_page(at, "Count", target="plain_app:app")
    assert texts(at) == ["api says ok"]
    assert os.environ.get("FLUXLIT_APP") != "plain_app:app"  # the run's environment was undone
    tc.select_page(at, "/reports/monthly", target="plain_app:app", page_overrides={"who": "kim"})
    assert texts(at) == ["monthly for kim; visited home: False"]


def test_select_page_on_a_plain_apptest_without_a_client_uses_the_given_target(tmp_path: Path) -> None:
    (tmp_path / "plain_file_app.py").write_text(
        "from fluxlit import FluxLit\n"
        "app = FluxLit(title='F')\n"
        "@app.page('/')\n"
        "def home(st, client):\n    st.write('home')\n"
        "@app.page('/other', title='Other')\n"
        "def other(st, client):\n    st.write(f'other, calling {client.base_url}')\n",
        encoding="utf-8",
    )
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(streamlit_main_path()))
    try:
        select_page(
            at, "Other", target="plain_file_app:app", extra_sys_path=tmp_path, internal_api_base="http://api.test/v9"
        )
        assert texts(at) == ["other, calling http://api.test/v9"]
    finally:
        sys.modules.pop("plain_file_app", None)
    assert str(tmp_path) not in sys.path


def test_select_page_options_change_the_later_runs_of_a_streamlit_apptest(tmp_path: Path) -> None:
    tc = FluxLitTestClient(make_two_page_app())
    at = tc.streamlit(target="two_app:app")
    select_page(at, "Monthly Reports", internal_api_base="http://127.0.0.1:1/api", extra_sys_path=tmp_path)
    assert at.fluxlit_env["FLUXLIT_INTERNAL_API_BASE"] == "http://127.0.0.1:1/api"
    assert at.fluxlit_sys_paths == [str(tmp_path.resolve())]
    select_page(at, "/", extra_sys_path=tmp_path)
    assert at.fluxlit_sys_paths == [str(tmp_path.resolve())]


MULTIPAGE = Path(__file__).resolve().parent.parent / "examples" / "multipage" / "app.py"


@pytest.fixture
def multipage() -> Any:
    """The multipage example, loaded by file path as `fluxlit serve` would; unloaded afterwards."""
    from fluxlit.targets import load_target

    saved = sys.modules.pop("app", None)
    try:
        app = load_target(f"{MULTIPAGE}:app").app
        yield FluxLitTestClient(app)
    finally:
        sys.modules.pop("app", None)
        if saved is not None:
            sys.modules["app"] = saved


def test_multipage_state_survives_moving_between_pages(multipage: FluxLitTestClient) -> None:
    target = f"{MULTIPAGE}:app"
    at = multipage.select_page(None, "Profile", target=target)
    assert texts(at) == ["Hello, stranger!"]
    at.text_input(key="profile_name").input("Ada").run()
    assert texts(at) == ["Hello, Ada!"]

    select_page(at, "Notes")
    assert_no_streamlit_exception(at)
    at.text_input[0].input("first note")
    at.button[0].click().run()
    assert "- first note" in texts(at)

    select_page(at, "/profile", page_overrides={"greeting": "Welcome back"})
    assert_no_streamlit_exception(at)
    assert texts(at) == ["Welcome back, Ada!"]


def test_multipage_upload_page_measures_the_file_through_the_api(multipage: FluxLitTestClient) -> None:
    at = multipage.streamlit(target=f"{MULTIPAGE}:app", query_params={"page": "upload"})
    if not hasattr(at, "file_uploader"):  # the Streamlit floor (1.54) runs the page, but its AppTest cannot upload
        pytest.skip("this Streamlit's AppTest has no file_uploader")
    at.file_uploader[0].set_value(("data.bin", b"x" * 1234, "application/octet-stream")).run()
    assert_no_streamlit_exception(at)
    assert texts(at) == ["Uploaded data.bin: 1234 bytes"]
