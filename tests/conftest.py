"""Shared fixtures: the seed's gateway_test_client_factory and requires_streamlit_apptest, log capture, and one
live smoke server a module (with an XSRF token and a Streamlit session on it)."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fluxlit.gateway.router import build_gateway
from fluxlit.observability.logs import configure_logging
from fluxlit.testing import TestClient
from tests._live import LiveServer, streamlit_session, xsrf_token
from tests._logs import JsonLog

# The external-tool marker, its skip reasons and the one-line skip summary (tests/_external.py).
pytest_plugins = ["tests._external"]


@pytest.fixture
def anyio_backend() -> str:
    """The gateway runs on asyncio only; anyio before 4.5 would also parametrize every async test with trio."""
    return "asyncio"


@pytest.fixture
def gateway_test_client_factory() -> Iterator[Callable[..., TestClient]]:
    """Build a real gateway (build_gateway) around an app and wrap it in a TestClient; closed after the test."""
    clients: list[TestClient] = []

    def factory(app: Any, **gateway_kwargs: Any) -> TestClient:
        client = TestClient(build_gateway(app, **gateway_kwargs))
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def log_stream() -> Iterator[JsonLog]:
    """fluxlit's logging at INFO as JSON lines into memory, as `--log-format json` sets it; handlers cleared after."""
    stream = JsonLog()
    configure_logging("info", "json", stream=stream)
    yield stream
    logging.getLogger().handlers.clear()


@pytest.fixture
def requires_streamlit_apptest() -> None:
    """Skip unless Streamlit's AppTest (Streamlit >= 1.30) can be imported."""
    pytest.importorskip("streamlit.testing.v1", reason="Streamlit AppTest needs streamlit>=1.30")


@pytest.fixture
def restored_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A run in this process installs signal handlers, logging and env vars: put them back afterwards."""
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    for name in ("FLUXLIT_TRUST_PROXY", "FLUXLIT_PUBLIC_BASE_URL"):  # serve sets them: monkeypatch restores them
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    yield
    for signum, handler in handlers.items():
        signal.signal(signum, handler)
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The smoke app under a real `fluxlit serve`, one for each test module that asks (slow tests only); a module
    that needs other flags defines its own `live`."""
    with LiveServer(tmp_path_factory.mktemp("live")).running() as server:
        yield server


@pytest.fixture(scope="module")
def token(live: LiveServer) -> str:
    """A Streamlit XSRF token for `live`, as a browser loading the app gets one."""
    return xsrf_token(live)


@pytest.fixture(scope="module")
def session_id(live: LiveServer, token: str) -> Iterator[str]:
    """The id of a live Streamlit session on `live`, opened through the gateway the way the frontend does it."""
    with streamlit_session(live, token) as found:
        yield found
