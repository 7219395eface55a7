"""FluxLitAppTest: Streamlit's AppTest of the bundled entrypoint, with FluxLit's test environment on every run."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Generator, Mapping
from types import ModuleType
from typing import Any

import httpx
from streamlit.testing.v1 import AppTest

from fluxlit.client import register_test_transport
from fluxlit.pages.di import OVERRIDES_ENV, load_page_overrides
from fluxlit.streamlit.command import streamlit_main_path


@contextlib.contextmanager
def _patched_env(values: Mapping[str, str]) -> Generator[None, None, None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@contextlib.contextmanager
def fluxlit_run(
    env: Mapping[str, str],
    *,
    modules: Mapping[str, ModuleType] | None = None,
    sys_paths: list[str] | None = None,
    transport: tuple[str, httpx.Client] | None = None,
) -> Generator[None, None, None]:
    """For one AppTest run: the environment, sys.path entries, in-memory app modules and the in-process API
    transport, all undone afterwards."""
    with _patched_env(env), _installed(modules or {}, sys_paths or []):
        unregister = register_test_transport(*transport) if transport is not None else None
        try:
            yield
        finally:
            if unregister is not None:
                unregister()


def overrides_env(page_overrides: Mapping[str, Any]) -> dict[str, str]:
    """FLUXLIT_TEST_PAGE_OVERRIDES for a run: overrides already in the environment (e.g. set with monkeypatch)
    stay, explicit ones win."""
    merged = {**load_page_overrides(), **page_overrides}
    try:
        return {OVERRIDES_ENV: json.dumps(merged)}
    except TypeError as exc:
        raise TypeError(
            f"page_overrides must be JSON values (they travel in {OVERRIDES_ENV}): {exc}; "
            "for objects, use Depends(...) and monkeypatch the dependency"
        ) from exc


@contextlib.contextmanager
def _installed(modules: Mapping[str, ModuleType], paths: list[str]) -> Generator[None, None, None]:
    added_paths = [p for p in paths if p not in sys.path]
    sys.path[:0] = added_paths
    added = {name: mod for name, mod in modules.items() if name not in sys.modules}
    sys.modules.update(added)
    try:
        yield
    finally:
        for name, mod in added.items():
            if sys.modules.get(name) is mod:
                del sys.modules[name]
        for path in added_paths:
            with contextlib.suppress(ValueError):
                sys.path.remove(path)


class FluxLitAppTest(AppTest):
    """An AppTest whose every run (``.run()``, ``button.click().run()``...) sees FLUXLIT_APP & co.

    The environment, sys.path entries, in-memory app modules and the in-process API transport are in place
    only while a run executes, so nothing leaks into other tests.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        modules: Mapping[str, ModuleType] | None = None,
        sys_paths: list[str] | None = None,
        transport: tuple[str, httpx.Client] | None = None,
        page_overrides: Mapping[str, Any] | None = None,
        default_timeout: float = 10.0,
    ) -> None:
        super().__init__(str(streamlit_main_path()), default_timeout=default_timeout)
        self.fluxlit_env = dict(env)
        self.fluxlit_modules = dict(modules or {})
        self.fluxlit_sys_paths = list(sys_paths or [])
        self.fluxlit_transport = transport
        self.page_overrides: dict[str, Any] | None = dict(page_overrides) if page_overrides is not None else None
        self.run_count = 0

    def _run(self, widget_state: Any = None, timeout: float | None = None) -> Any:
        env = dict(self.fluxlit_env)
        if self.page_overrides is not None:
            env.update(overrides_env(self.page_overrides))
        with fluxlit_run(
            env, modules=self.fluxlit_modules, sys_paths=self.fluxlit_sys_paths, transport=self.fluxlit_transport
        ):
            result = super()._run(widget_state, timeout)
        self.run_count += 1
        return result


def synthetic_module(name: str, attr: str, value: Any) -> ModuleType:
    """A stand-in module holding ``value`` as ``attr``, for a target that exists only in the test's memory."""
    module = ModuleType(name, f"In-memory FluxLit app for the test target {name}:{attr}")
    setattr(module, attr, value)
    return module
