"""pyproject.toml's dependency floors: each one past its package's known advisories, and each one auditable."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


floor_constraints = script("floor_constraints")
floor_advisories = script("floor_advisories")


def floors() -> dict[str, str]:
    pins, open_floors = floor_constraints.floor_constraints(PYPROJECT, ["auth"])
    assert open_floors == [], f"requirements without a floor cannot be audited: {open_floors}"
    return dict(pin.split("==") for pin in pins)


def test_every_floor_is_past_the_known_advisories_of_its_package() -> None:
    curated = floor_advisories.load()
    affected = {f"{name}=={version}": curated.affecting(name, version) for name, version in floors().items()}
    assert {pin: ids for pin, ids in affected.items() if ids} == {}


def test_every_floor_has_its_advisories_reviewed() -> None:
    # A new dependency (or one renamed) must have its advisories looked up before its floor can be audited here.
    curated = floor_advisories.load()
    assert [name for name in floors() if not curated.covers(name)] == []


@pytest.mark.parametrize(
    ("requirement", "version", "advisory"),
    [
        ("h11", "0.14.0", "GHSA-vqfr-h8mv-ghfj"),  # CVE-2025-43859: chunked-body request smuggling
        ("streamlit", "1.40.0", "GHSA-7p48-42j8-8846"),
        ("PyJWT", "2.10.0", "GHSA-75c5-xw7c-p5pm"),
    ],
)
def test_the_floors_this_replaced_are_flagged(requirement: str, version: str, advisory: str) -> None:
    assert any(hit.startswith(advisory) for hit in floor_advisories.load().affecting(requirement, version))


def test_a_fixed_version_is_not_flagged() -> None:
    assert floor_advisories.load().affecting("h11", "0.16.0") == []


def test_floor_constraints_pin_the_lowest_allowed_versions_and_skip_unmet_markers() -> None:
    project = {
        "project": {
            "dependencies": ["anyio>=4.4", "tomli>=2; python_version < '3.0'", "h11 ~= 0.16"],
            "optional-dependencies": {"auth": ["PyJWT[crypto]>=2.13"]},
        }
    }
    pins, open_floors = floor_constraints.floor_constraints(project, ["auth"])
    assert pins == ["anyio==4.4", "h11==0.16", "pyjwt==2.13"]
    assert open_floors == []


def test_a_requirement_without_a_floor_is_reported() -> None:
    project = {"project": {"dependencies": ["anyio", "click<9"]}}
    assert floor_constraints.floor_constraints(project, []) == ([], ["anyio", "click"])


def test_an_unknown_extra_is_refused() -> None:
    with pytest.raises(SystemExit, match="no extra 'nope'"):
        floor_constraints.floor_constraints({"project": {"dependencies": []}}, ["nope"])


def test_a_malformed_affected_range_fails_loudly(tmp_path: Path) -> None:
    table = tmp_path / "advisories.json"
    table.write_text('{"reviewed": "2026-12-02", "packages": {"h11": [{"id": "X", "affected": "< 0.16 oops"}]}}')
    with pytest.raises(ValueError, match=r"oops|Invalid specifier"):
        floor_advisories.load(table)
