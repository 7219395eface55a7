"""The unified ASGI app (`uvicorn app:app`): its lifespan runs the child, the gateway answers, the child is shared.

In process, with a tiny real HTTP server as the child (tests/supervisor/fake_child.py) in place of Streamlit; the
slow twin (test_asgi_unified_slow.py) runs hypercorn and uvicorn for real with Streamlit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import Request
from fluxlit_supervisor import ChildSpec, StateHub, UpstreamState

import fluxlit.runtime
from fluxlit import FluxLit
from fluxlit.runtime.unified import (
    InnerLifespan,
    UnifiedApp,
    claim_child,
    create_gateway_app,
    create_unified_app,
    shared_state_file,
    unified_app,
)
from fluxlit.targets import LoadedTarget
from tests._live import pid_alive

pytestmark = pytest.mark.anyio

FAKE_CHILD = Path(__file__).parent / "supervisor" / "fake_child.py"


def fake_child(*args: str) -> ChildSpec:
    def argv(port: int) -> Sequence[str]:
        return [sys.executable, str(FAKE_CHILD), "--port", str(port), *args]

    return ChildSpec(argv=argv, start_timeout=10.0, stop_grace=2.0, health_interval=1.0, name="fake")


@pytest.fixture(autouse=True)
def state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No fluxlit.toml, no outside FLUXLIT_* variables; the state file in this test's directory."""
    for name in list(os.environ):
        if name.startswith("FLUXLIT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    state_file = tmp_path / "state.json"
    monkeypatch.setenv("FLUXLIT_STREAMLIT_UPSTREAM_FILE", str(state_file))
    return state_file


def demo_app() -> FluxLit:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(api: Any) -> AsyncGenerator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = FluxLit(title="Unified", fastapi_kwargs={"lifespan": lifespan})
    app.api.state.events = events

    @app.api.post("/echo-length")
    async def echo_length(request: Request) -> dict[str, int]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"bytes": size}

    @app.page("/")
    def home(st: Any) -> None:
        st.write("home")

    return app


def unified(app: FluxLit, *child_args: str) -> UnifiedApp:
    return UnifiedApp(LoadedTarget("app:app", app, app.api), sidecar=True, child=fake_child(*child_args))


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncGenerator[httpx.AsyncClient]:
    """Run `app`'s lifespan as an ASGI server does, and a client on it; shutdown when the block ends."""
    to_app, app_inbox = anyio.create_memory_object_stream[dict[str, Any]](4)
    app_outbox, from_app = anyio.create_memory_object_stream[dict[str, Any]](4)
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    async with anyio.create_task_group() as group:
        group.start_soon(app, scope, app_inbox.receive, app_outbox.send)
        await to_app.send({"type": "lifespan.startup"})
        with anyio.fail_after(20):
            reply = await from_app.receive()
        assert reply["type"] == "lifespan.startup.complete", reply
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
        await to_app.send({"type": "lifespan.shutdown"})
        with anyio.fail_after(20):
            reply = await from_app.receive()
        assert reply["type"] == "lifespan.shutdown.complete", reply


async def wait_for_state(hub: StateHub, name: str) -> None:
    reached = anyio.Event()

    def watch(state: UpstreamState) -> None:
        if state.state == name:
            reached.set()

    hub.subscribe(watch)
    try:
        with anyio.fail_after(10):
            await reached.wait()
    finally:
        hub.unsubscribe(watch)


async def test_lifespan_starts_the_child_runs_the_inner_lifespan_and_stops_the_child_by_pid() -> None:
    app = demo_app()
    asgi = unified(app)
    async with served(asgi) as client:
        current = asgi.hub.current
        assert current.state == "ready"
        assert current.pid is not None
        pid = current.pid
        assert app.api.state.events == ["startup"]
        assert pid_alive(pid)
        proxied = await client.get("/")
        assert proxied.status_code == 200
        assert proxied.text == "child ok\n"
    assert app.api.state.events == ["startup", "shutdown"]
    assert not pid_alive(pid)
    assert asgi.hub.current.state == "stopped"


async def test_the_state_file_names_the_child_while_it_runs_and_is_removed_after(state_file: Path) -> None:
    asgi = unified(demo_app())
    async with served(asgi):
        assert f'"pid": {asgi.hub.current.pid}' in await anyio.Path(state_file).read_text()
    assert not await anyio.Path(state_file).exists()


async def test_serial_and_concurrent_bursts_of_healthz_all_answer_200() -> None:
    async with served(unified(demo_app())) as client:
        serial = [(await client.get("/api/healthz")).status_code for _ in range(50)]
        concurrent: list[int] = []

        async def one() -> None:
            concurrent.append((await client.get("/api/healthz")).status_code)

        async with anyio.create_task_group() as group:
            for _ in range(100):
                group.start_soon(one)
    assert serial == [200] * 50
    assert concurrent == [200] * 100


async def test_a_chunked_streaming_post_reaches_the_api_whole() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"x" * 1024

    async with served(unified(demo_app())) as client:
        response = await client.post("/api/echo-length", content=chunks())
    assert response.status_code == 200
    assert response.json() == {"bytes": 64 * 1024}


async def test_when_the_child_dies_proxied_http_and_readyz_answer_503_and_healthz_stays_200(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLUXLIT_RESTART_BACKOFF_INITIAL_S", "30")  # a long window to look at the restart in
    monkeypatch.setenv("FLUXLIT_RESTART_BACKOFF_MAX_S", "30")
    asgi = unified(demo_app())
    async with served(asgi) as client:
        pid = asgi.hub.current.pid
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)
        await wait_for_state(asgi.hub, "restarting")
        proxied = await client.get("/")
        ready = await client.get("/api/readyz")
        health = await client.get("/api/healthz")
        closed = await websocket_refusal(asgi)
    assert closed == {"type": "websocket.close", "code": 1012, "reason": "Streamlit is restarting"}
    assert proxied.status_code == 503
    assert "retry-after" in proxied.headers
    assert ready.status_code == 503
    assert "retry-after" in ready.headers
    assert health.status_code == 200


async def websocket_refusal(asgi: UnifiedApp) -> dict[str, Any]:
    """What the app answers a browser's Streamlit WebSocket (no denial-response extension: a close)."""
    scope = {
        "type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "http_version": "1.1",
        "path": "/_stcore/stream", "raw_path": b"/_stcore/stream", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80),
        "subprotocols": ["streamlit"], "extensions": {},
    }  # fmt: skip
    sent: list[dict[str, Any]] = []
    connected = False

    async def receive() -> dict[str, Any]:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    with anyio.fail_after(5):
        await asgi(scope, receive, send)
    return sent[-1]


async def test_a_child_that_never_starts_fails_the_lifespan_startup() -> None:
    asgi = unified(demo_app(), "--exit-now", "--exit-code", "3")
    to_app, app_inbox = anyio.create_memory_object_stream[dict[str, Any]](4)
    app_outbox, from_app = anyio.create_memory_object_stream[dict[str, Any]](4)
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    async with anyio.create_task_group() as group:
        group.start_soon(asgi, scope, app_inbox.receive, app_outbox.send)
        await to_app.send({"type": "lifespan.startup"})
        with anyio.fail_after(20):
            reply = await from_app.receive()
    assert reply["type"] == "lifespan.startup.failed"
    assert "CHILD_START_FAILED" in reply["message"]


async def test_a_second_worker_follows_the_first_ones_child_through_the_state_file() -> None:
    first, second = unified(demo_app()), unified(demo_app())
    async with served(first) as first_client, served(second) as second_client:
        assert first.owns_child
        assert not second.owns_child
        assert (await second_client.get("/")).text == "child ok\n"
        assert (await first_client.get("/")).text == "child ok\n"


def test_the_child_lock_is_held_by_one_open_file_at_a_time(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    owner = claim_child(state)
    assert owner is not None
    assert claim_child(state) is None
    os.close(owner)
    again = claim_child(state)
    assert again is not None
    os.close(again)


def test_workers_of_one_server_share_a_state_file_and_separate_servers_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alone = shared_state_file("app:app")
    assert alone.name.startswith(f"unified-{os.getpid()}-")
    monkeypatch.setitem(sys.modules, "gunicorn.arbiter", sys)  # as in a gunicorn worker
    assert shared_state_file("app:app").name.startswith(f"unified-{os.getppid()}-")
    assert shared_state_file("app:app") != shared_state_file("other:app")


async def test_a_fluxlit_instance_is_an_asgi_app_serving_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    # An external Streamlit: FluxLit.__call__ builds the very gateway `fluxlit serve` does, starting no child.
    monkeypatch.delenv("FLUXLIT_STREAMLIT_UPSTREAM_FILE")
    monkeypatch.setenv("FLUXLIT_STREAMLIT_UPSTREAM", "http://127.0.0.1:9")
    app = demo_app()
    async with served(app) as client:
        health = await client.get("/api/healthz")
        ready = await client.get("/api/readyz")
        docs = await client.get("/docs", follow_redirects=False)
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 503
    assert docs.status_code == 307
    assert docs.headers["location"] == "/api/docs"
    assert app.api.state.events == ["startup", "shutdown"]


async def test_the_unified_app_of_a_fluxlit_supervises_the_streamlit_child_of_its_settings() -> None:
    asgi = unified_app(demo_app())
    assert asgi.owns_child
    assert asgi.hub.current.state == "starting"  # nothing started before the lifespan


@pytest.mark.parametrize("factory", [create_unified_app, create_gateway_app])
def test_the_factories_need_fluxlit_app(factory: Any) -> None:
    with pytest.raises(RuntimeError, match="FLUXLIT_APP=app:app"):
        factory()


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    (tmp_path / "unified_target.py").write_text(
        "from fluxlit import FluxLit\napp = FluxLit(title='T')\n\n@app.page('/')\ndef home(st):\n    st.write('x')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("FLUXLIT_APP", "unified_target:app")
    yield "unified_target:app"
    sys.modules.pop("unified_target", None)


async def test_create_unified_app_supervises_the_child_of_fluxlit_app(app_module: str) -> None:
    assert fluxlit.runtime.create_unified_app().owns_child


async def test_create_gateway_app_starts_no_child_and_answers_health(app_module: str) -> None:
    asgi = fluxlit.runtime.create_gateway_app()
    assert not asgi.owns_child
    async with served(asgi) as client:
        assert (await client.get("/api/healthz")).status_code == 200
        assert (await client.get("/")).status_code == 503


def test_the_runtime_package_names_only_its_factories_lazily() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = fluxlit.runtime.nothing


async def test_an_inner_app_without_a_lifespan_counts_as_started() -> None:
    async def no_lifespan(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("lifespan not supported")

    inner = InnerLifespan(no_lifespan, {"type": "lifespan"})
    async with anyio.create_task_group() as group:
        await group.start(inner.run)
        assert await inner.step("startup") == {"type": "lifespan.startup.complete"}
