"""HTTP through the gateway to a real upstream on loopback, as `fluxlit serve` composes them: the path under the
mount, request and response bodies, Streamlit's answer as it sent it, the API kept apart, and one pooled
keep-alive connection for consecutive requests. The upstream is a hypercorn server where the Streamlit child
would be (tests/_origin.py); the proxy's own rules against misbehaving upstreams are in tests/proxy/."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fluxlit.testing import TestClient
from tests._origin import LoopbackOrigin, app_with_a_page, plan_ready_at

MOUNT = "/apps/demo"


def test_a_page_request_reaches_streamlit_under_the_mount_and_its_answer_comes_back(tmp_path: Path) -> None:
    with LoopbackOrigin() as origin:
        plan = plan_ready_at(origin.port, tmp_path, root_path=MOUNT)
        with TestClient(plan.gateway) as client:
            response = client.get(MOUNT + "/static/app.js?v=3")
    assert response.status_code == 200
    assert response.json()["raw_path"] == MOUNT + "/static/app.js"
    (seen,) = origin.requests
    assert (seen.method, seen.raw_path, seen.query_string) == ("GET", b"/apps/demo/static/app.js", b"v=3")


def pieces() -> Iterator[bytes]:
    for index in range(64):
        yield bytes([index]) * 4096


def test_a_streamed_request_body_reaches_streamlit_whole(tmp_path: Path) -> None:
    """A chunked upload (as Streamlit's file uploader PUTs) of 256 KiB, in 64 parts."""
    whole = b"".join(pieces())
    with LoopbackOrigin() as origin, TestClient(plan_ready_at(origin.port, tmp_path).gateway) as client:
        response = client.put("/_stcore/upload_file/session/file", content=pieces())
    assert response.json()["body_length"] == len(whole)
    assert response.json()["body_sha256"] == hashlib.sha256(whole).hexdigest()
    (seen,) = origin.requests
    assert seen.header("transfer-encoding") == "chunked"


def test_streamlits_status_headers_and_body_come_back_as_it_sent_them(tmp_path: Path) -> None:
    async def not_found(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"set-cookie", b"a=1; Path=/"), (b"set-cookie", b"b=2; HttpOnly"), (b"x-streamlit", b"yes")]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": b"no such page", "more_body": True})
        await send({"type": "http.response.body", "body": b" here"})

    with LoopbackOrigin(not_found) as origin, TestClient(plan_ready_at(origin.port, tmp_path).gateway) as client:
        response = client.get("/missing")
    assert (response.status_code, response.text) == (404, "no such page here")
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert response.headers["x-streamlit"] == "yes"


def test_api_requests_never_reach_streamlit_and_everything_else_does(tmp_path: Path) -> None:
    app = app_with_a_page()

    @app.api.get("/users")
    def users() -> list[str]:
        return ["Ada"]

    with LoopbackOrigin() as origin, TestClient(plan_ready_at(origin.port, tmp_path, app=app).gateway) as client:
        assert client.get("/api/users").json() == ["Ada"]
        assert client.get("/api/missing").status_code == 404
        assert client.get("/api/healthz").status_code == 200
        assert client.get("/apix").status_code == 200
    assert [seen.raw_path for seen in origin.requests] == [b"/apix"]


def test_consecutive_requests_share_one_pooled_connection_to_streamlit(tmp_path: Path) -> None:
    with LoopbackOrigin() as origin, TestClient(plan_ready_at(origin.port, tmp_path).gateway) as client:
        for _ in range(5):
            assert client.get("/page").status_code == 200
    ports = {seen.client_port for seen in origin.requests}
    assert len(origin.requests) == 5
    assert len(ports) == 1
