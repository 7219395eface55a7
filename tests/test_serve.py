"""The serve plan hands the settings on to the pieces they configure."""

from __future__ import annotations

from pathlib import Path

from fluxlit import FluxLit
from fluxlit.serve import ServePlan
from fluxlit.settings import Settings
from fluxlit.targets import LoadedTarget


def test_the_proxy_pool_expires_idle_connections_after_the_configured_seconds(tmp_path: Path) -> None:
    app = FluxLit()
    settings = Settings(port=8123, state_file=str(tmp_path / "state.json"), upstream_pool_idle_timeout_s=2.5)
    plan = ServePlan(settings, LoadedTarget("app:app", app, app.api))
    assert plan.proxy is not None
    assert plan.proxy.config.pool_idle_timeout == 2.5


def test_by_default_pooled_connections_expire_before_streamlits_five_second_keep_alive(tmp_path: Path) -> None:
    app = FluxLit()
    plan = ServePlan(Settings(port=8123, state_file=str(tmp_path / "s.json")), LoadedTarget("app:app", app, app.api))
    assert plan.proxy is not None
    assert plan.proxy.config.pool_idle_timeout < 5.0
