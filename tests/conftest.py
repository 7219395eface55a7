"""Shared fixtures: the seed's gateway_test_client_factory and requires_streamlit_apptest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fluxlit.gateway import build_gateway
from fluxlit.testing import TestClient


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
def requires_streamlit_apptest() -> None:
    """Skip unless Streamlit's AppTest (Streamlit >= 1.30) can be imported."""
    pytest.importorskip("streamlit.testing.v1", reason="Streamlit AppTest needs streamlit>=1.30")
