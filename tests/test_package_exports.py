"""The three packages' top-level names: each listed name imports, an unknown one names the real package."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["fluxlit", "fluxlit_supervisor", "fluxlit_proxy"])
def test_every_name_a_package_lists_in_all_imports(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if getattr(module, name, None) is None]
    assert missing == []


@pytest.mark.parametrize("package", ["fluxlit", "fluxlit_supervisor"])
def test_an_unknown_name_is_an_attribute_error_naming_the_installed_package(package: str) -> None:
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match=rf"^module '{package}' has no attribute 'nope'$"):
        module.nope  # noqa: B018 - the lookup is the test
