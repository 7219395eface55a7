"""How `fluxlit serve` lays out its sockets and parser limits for the gateway's hardening settings."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from fluxlit import FluxLit
from fluxlit.serve import ServePlan, hypercorn_options
from fluxlit.settings import Settings
from fluxlit.targets import LoadedTarget


def plan_for(tmp_path: Path, **values: object) -> ServePlan:
    settings = Settings(port=8123, state_file=str(tmp_path / "state.json"), **values)
    return ServePlan(settings, LoadedTarget("app:app", FluxLit(), FluxLit().api))


def test_the_metrics_bind_is_served_beside_the_public_one(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, metrics_bind="0.0.0.0:9100")
    assert list(plan.serve.binds) == ["127.0.0.1:8123", "0.0.0.0:9100"]
    assert plan.gateway.internal_access.port == 9100


def test_under_tls_the_metrics_bind_stays_plain_http(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, metrics_bind="0.0.0.0:9100", certfile="c.pem", keyfile="k.pem")
    assert list(plan.serve.binds) == ["127.0.0.1:8123"]
    plain = plan.serve.hypercorn_options["insecure_bind"]
    assert plain[-1] == "0.0.0.0:9100"
    assert plain[0].startswith("127.0.0.1:")  # the pages' loopback API bind comes first


def test_without_a_metrics_bind_only_the_public_binds_listen(tmp_path: Path) -> None:
    plan = plan_for(tmp_path)
    assert list(plan.serve.binds) == ["127.0.0.1:8123"]
    assert "insecure_bind" not in plan.serve.hypercorn_options
    assert plan.gateway.internal_access.port is None


def test_an_api_only_app_still_serves_its_metrics_bind(tmp_path: Path) -> None:
    settings = Settings(port=8123, metrics_bind="127.0.0.1:9100", state_file=str(tmp_path / "s.json"))
    plan = ServePlan(settings, LoadedTarget("api:api", None, FastAPI()))
    assert list(plan.serve.binds) == ["127.0.0.1:8123", "127.0.0.1:9100"]


def test_the_parsers_limits_sit_above_the_gateways_own() -> None:
    """h11 and h2 are only a memory backstop: the gateway's exact count decides (h11 issue 182)."""
    settings = Settings(max_url_bytes=8192, max_header_bytes=65536)
    options = hypercorn_options(settings)
    assert options["h11_max_incomplete_size"] > settings.max_url_bytes + settings.max_header_bytes
    assert options["h2_max_header_list_size"] > options["h11_max_incomplete_size"]
    bigger = hypercorn_options(Settings(max_header_bytes=1 << 20))
    assert bigger["h11_max_incomplete_size"] > 1 << 20
    assert options["accesslog"] is None
