"""Loading the app target ("module:attr", "module:factory()", "path/app.py:attr"); errors say what was tried."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from fluxlit.asgi_types import ASGIApp
from fluxlit.errors import TargetError

if TYPE_CHECKING:  # FastAPI loads with the target, not before: `serve` starts Streamlit while it does
    from fluxlit.app import FluxLit

DEFAULT_ATTR = "app"


@dataclass(frozen=True)
class LoadedTarget:
    """The imported app: a FluxLit, or a plain ASGI app served as the API with no pages."""

    spec: str
    app: FluxLit | None
    api: ASGIApp

    @property
    def title(self) -> str:
        return self.app.title if self.app else "FluxLit"


@dataclass(frozen=True)
class TargetSpec:
    module: str
    attr: str
    call: bool
    file: Path | None


def parse_target(spec: str) -> TargetSpec:
    text = spec.strip()
    if not text:
        raise TargetError("the app target is empty: pass one like 'app:app' (module:attribute)")
    module_part, sep, attr = text.rpartition(":")
    if not sep or (len(module_part) == 1 and module_part.isalpha() and attr[:1] in ("/", "\\")):  # a drive letter
        module_part, attr = text, DEFAULT_ATTR
    call = attr.endswith("()")
    attr = attr[:-2] if call else attr
    if not attr.isidentifier():
        raise TargetError(f"target {spec!r}: {attr!r} is not a Python name; use 'module:attribute' e.g. 'app:app'")
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        path = Path(module_part)
        return TargetSpec(path.stem, attr, call, path)
    if not all(part.isidentifier() for part in module_part.split(".")):
        raise TargetError(f"target {spec!r}: {module_part!r} is not a module name nor a .py file path")
    return TargetSpec(module_part, attr, call, None)


def target_exists(spec: str, *, cwd: Path | None = None) -> bool:
    """Whether the target's file, or its top-level module, can be found without importing any of its code."""
    try:
        parsed = parse_target(spec)
    except TargetError:
        return False
    base = cwd or Path.cwd()
    if parsed.file is not None:
        return (parsed.file if parsed.file.is_absolute() else base / parsed.file).is_file()
    top = parsed.module.partition(".")[0]
    if top in sys.modules or importlib.machinery.PathFinder.find_spec(top, [str(base)]) is not None:
        return True
    return importlib.util.find_spec(top) is not None  # a top-level name: finding it runs none of its code


def load_target(spec: str, *, cwd: Path | None = None) -> LoadedTarget:
    """Import the target and check it is an app; every failure raises TargetError (exit code 3)."""
    # Here, not at the top: a plain ASGI target never pays for FastAPI (~0.7 s, python -X importtime), and
    # `fluxlit serve` imports this module before it starts Streamlit early.
    from fluxlit.app import FluxLit

    parsed = parse_target(spec)
    base = cwd or Path.cwd()
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    module = _import_file(parsed, base, spec) if parsed.file else _import_module(parsed.module, spec)
    if not hasattr(module, parsed.attr):
        found = sorted(name for name, value in vars(module).items() if _is_app(value) and not name.startswith("_"))
        hint = f"; apps found there: {', '.join(found)}" if found else ""
        raise TargetError(f"target {spec!r}: module {module.__name__!r} has no attribute {parsed.attr!r}{hint}")
    obj = getattr(module, parsed.attr)
    if parsed.call:
        if not callable(obj):
            raise TargetError(f"target {spec!r}: {parsed.attr!r} is not callable, so it cannot be a factory")
        try:
            obj = obj()
        except Exception as exc:
            raise TargetError(f"target {spec!r}: the factory raised {type(exc).__name__}: {exc}") from exc
    if isinstance(obj, FluxLit):
        return LoadedTarget(spec, obj, obj.api)
    if _is_app(obj):
        return LoadedTarget(spec, None, obj)
    hint = " (did you mean to call a factory? add '()')" if callable(obj) else ""
    raise TargetError(
        f"target {spec!r} is a {type(obj).__name__}, not a FluxLit app, a FastAPI app or an ASGI callable{hint}"
    )


def _is_app(value: Any) -> bool:
    # fluxlit.app brings FastAPI (~0.2 s): the early start reads targets before anything imports it.
    from fluxlit.app import FluxLit

    if isinstance(value, FluxLit):
        return True
    if inspect.isclass(value) or not callable(value):
        return False
    call = value if inspect.isfunction(value) else type(value).__call__
    return inspect.iscoroutinefunction(call)


def _import_module(name: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise TargetError(
                f"target {spec!r}: no module named {name!r} (looked in {Path.cwd()} and sys.path); "
                "run from the directory that holds it, or pass a file path like 'path/to/app.py:app'"
            ) from exc
        raise TargetError(f"target {spec!r}: importing {name!r} failed: {exc}") from exc
    except Exception as exc:
        raise TargetError(f"target {spec!r}: importing {name!r} raised {type(exc).__name__}: {exc}") from exc


def _import_file(parsed: TargetSpec, base: Path, spec: str) -> ModuleType:
    assert parsed.file is not None
    path = parsed.file if parsed.file.is_absolute() else base / parsed.file
    if not path.is_file():
        raise TargetError(f"target {spec!r}: file {str(path)!r} does not exist")
    parent = str(path.parent.resolve())
    if parent not in sys.path:
        sys.path.insert(0, parent)
    module_spec = importlib.util.spec_from_file_location(parsed.module, path)
    if module_spec is None or module_spec.loader is None:
        raise TargetError(f"target {spec!r}: {str(path)!r} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[parsed.module] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(parsed.module, None)
        raise TargetError(f"target {spec!r}: running {str(path)!r} raised {type(exc).__name__}: {exc}") from exc
    return module
