"""Target loading: every accepted form, and failures that say what was tried."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluxlit import FluxLit
from fluxlit.errors import TargetError
from fluxlit.exit_codes import ExitCode
from fluxlit.targets import load_target, parse_target

APP_SOURCE = """
from fluxlit import FluxLit
from fastapi import FastAPI

app = FluxLit(title="From file")
plain = FastAPI()
number = 42

async def raw_asgi(scope, receive, send):
    pass

def make_app():
    return FluxLit(title="Made")

def broken_factory():
    raise RuntimeError("no database")

class NotAnApp:
    pass
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    name = f"userapp_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(APP_SOURCE)
    (tmp_path / "crashes.py").write_text("raise ValueError('bad config at import')\n")
    (tmp_path / "imports_missing.py").write_text("import definitely_not_installed_pkg\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for mod in [name, "crashes", "imports_missing"]:
        sys.modules.pop(mod, None)


def modname(project: Path) -> str:
    return f"userapp_{project.name.replace('-', '_')}"


def test_module_attr(project: Path) -> None:
    loaded = load_target(f"{modname(project)}:app")
    assert isinstance(loaded.app, FluxLit)
    assert loaded.app.title == "From file"
    assert loaded.api is loaded.app.api


def test_module_alone_defaults_to_app_attribute(project: Path) -> None:
    assert load_target(modname(project)).title == "From file"


def test_factory_call(project: Path) -> None:
    assert load_target(f"{modname(project)}:make_app()").title == "Made"


def test_file_path(project: Path) -> None:
    loaded = load_target(f"{modname(project)}.py:app", cwd=project)
    assert loaded.title == "From file"


def test_plain_fastapi_and_raw_asgi_become_the_api_with_no_pages(project: Path) -> None:
    for attr in ("plain", "raw_asgi"):
        loaded = load_target(f"{modname(project)}:{attr}")
        assert loaded.app is None
        assert callable(loaded.api)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nosuchmodule:app", "no module named 'nosuchmodule'"),
        ("{mod}:missing", "has no attribute 'missing'; apps found there: app, plain, raw_asgi"),
        ("{mod}:number", "is a int, not a FluxLit app, a FastAPI app or an ASGI callable"),
        ("{mod}:NotAnApp", "is a type, not a FluxLit app"),
        ("{mod}:make_app", "did you mean to call a factory? add '()'"),
        ("{mod}:broken_factory()", "the factory raised RuntimeError: no database"),
        ("{mod}:number()", "is not callable"),
        ("crashes:app", "importing 'crashes' raised ValueError: bad config at import"),
        (
            "imports_missing:app",
            "importing 'imports_missing' failed: No module named 'definitely_not_installed_pkg'",
        ),
        ("missing_file.py:app", "does not exist"),
        ("", "is empty"),
        ("a-b:app", "not a module name"),
        ("mod:1x", "is not a Python name"),
    ],
)
def test_bad_targets_say_what_was_tried(project: Path, target: str, message: str) -> None:
    with pytest.raises(TargetError) as info:
        load_target(target.format(mod=modname(project)), cwd=project)
    assert message in str(info.value)
    assert info.value.exit_code == ExitCode.TARGET_IMPORT_FAILED == 3


@pytest.mark.parametrize(
    ("spec", "module", "attr", "call"),
    [
        ("a.b:c", "a.b", "c", False),
        ("a:f()", "a", "f", True),
        ("x/y.py:z", "y", "z", False),
        ("m", "m", "app", False),
    ],
)
def test_parse_target(spec: str, module: str, attr: str, call: bool) -> None:
    parsed = parse_target(spec)
    assert (parsed.module, parsed.attr, parsed.call) == (module, attr, call)


def test_a_file_target_python_cannot_import_is_a_target_error(tmp_path: Path) -> None:
    (tmp_path / "app.txt").write_text("app = None\n")
    with pytest.raises(TargetError, match=r"app\.txt' cannot be imported as a Python module"):
        load_target("./app.txt:app", cwd=tmp_path)
