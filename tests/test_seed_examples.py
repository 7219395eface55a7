"""The seed Testing page's code blocks, verbatim, as tests: the user's contract."""

from fluxlit import FluxLit, FluxLitTestClient


def make_app() -> FluxLit:
    app = FluxLit(title="Tested App")

    @app.api.get("/users")
    def users():
        return [{"name": "Ada"}]

    return app


def test_api_users():
    client = FluxLitTestClient(make_app())
    response = client.api_get("/users")
    assert response.status_code == 200
    assert response.json() == [{"name": "Ada"}]


def make_demo_app() -> FluxLit:
    app = FluxLit(title="Demo")

    @app.api.get("/widgets")
    def widgets():
        return [{"id": 1}]

    return app


def test_api_under_content_prefix():
    tc = FluxLitTestClient(make_demo_app()).with_root_path("/content/42")
    res = tc.api_get("/widgets")
    assert res.status_code == 200


def test_per_call_root_path_uses_a_matching_gateway():
    client = FluxLitTestClient(make_demo_app())
    assert client.api_get("/widgets", root_path="/content/42").status_code == 200
    assert client.api.get("/content/42/api/widgets").status_code == 503  # not under this client's mount


def test_raw_api_client_needs_full_public_paths_under_a_mount():
    tc = FluxLitTestClient(make_demo_app(), root_mount="/wb")
    assert tc.api.get("/wb/api/healthz").json() == {"status": "ok"}


def test_assert_docs_available_passes_at_root_and_under_a_mount():
    client = FluxLitTestClient(make_demo_app())
    client.assert_docs_available()
    client.assert_docs_available(root_path="/content/42")
