"""fluxlit's modules import each other without a cycle, counting imports inside functions (which hide cycles)."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test  # `if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(node: ast.Import | ast.ImportFrom, package: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        parent = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*parent, base] if base else parent)
    yield base
    yield from (f"{base}.{alias.name}" for alias in node.names)  # `from fluxlit.pages import di` names a module


def runtime_imports(root: Path, package: str) -> dict[str, set[str]]:
    """Each module of `package` -> the modules of it that it imports when it runs, wherever the import stands."""
    paths = {module_name(root, path): path for path in (root / package).rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        pending: list[ast.AST] = [ast.parse(path.read_text(), str(path))]
        while pending:
            node = pending.pop()
            for child in ast.iter_child_nodes(node):
                if _type_checking_only(child):
                    pending.extend(child.orelse)  # the `if` body never runs; an `else:` would
                    continue
                if isinstance(child, ast.Import | ast.ImportFrom):
                    graph[name].update(m for m in _imported(child, here) if m in paths and m != name)
                pending.append(child)
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] when there is none (a depth-first walk that keeps its trail)."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        trail = [start]
        branches = [iter(sorted(graph[start]))]
        while branches:
            step = next(branches[-1], None)
            if step is None:
                done.add(trail.pop())
                branches.pop()
            elif step in trail:
                return [*trail[trail.index(step) :], step]
            elif step not in done:
                trail.append(step)
                branches.append(iter(sorted(graph[step])))
    return []


@pytest.mark.parametrize(
    ("root", "package"),
    [(ROOT, "fluxlit"), (ROOT / "supervisor", "fluxlit_supervisor"), (ROOT / "proxy", "fluxlit_proxy")],
)
def test_no_package_has_an_import_cycle_counting_imports_inside_functions(root: Path, package: str) -> None:
    graph = runtime_imports(root, package)
    assert len(graph) > 10  # the walk found the package's modules
    assert find_cycle(graph) == []


def write_package(root: Path, modules: Mapping[str, str]) -> None:
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    for name, source in modules.items():
        (root / "pkg" / f"{name}.py").write_text(source)


def test_a_cycle_hidden_in_a_function_level_import_is_found(tmp_path: Path) -> None:
    write_package(tmp_path, {"a": "from pkg import b\n", "b": "def late():\n    from pkg.a import thing\n"})
    assert find_cycle(runtime_imports(tmp_path, "pkg")) == ["pkg.a", "pkg.b", "pkg.a"]


def test_relative_imports_and_longer_cycles_are_followed(tmp_path: Path) -> None:
    modules = {
        "a": "from . import b\n",
        "b": "from .c import x\n",
        "c": "class K:\n    def m(self):\n        import pkg.a\n",
    }
    write_package(tmp_path, modules)
    assert find_cycle(runtime_imports(tmp_path, "pkg")) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]


def test_an_import_for_type_checking_only_is_no_cycle(tmp_path: Path) -> None:
    guarded = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\nelse:\n    A = None\n"
    write_package(tmp_path, {"a": "from pkg import b\n", "b": guarded})
    assert runtime_imports(tmp_path, "pkg")["pkg.b"] == set()
    assert find_cycle(runtime_imports(tmp_path, "pkg")) == []


# Imports by name (importlib) are invisible to import-linter and to the cycle check above; each must be listed here
# with its reason. `FluxLit.__call__` is the one upward edge: `uvicorn app:app` loads only the user's module, so the
# app must reach the runtime that composes it with the gateway, and only when it is called as an ASGI app.
BY_NAME_IMPORTS = {
    ("fluxlit/app.py", "fluxlit.runtime.unified"),  # the unified ASGI app, on the first ASGI call
    ("fluxlit/auth/__init__.py", "fluxlit.auth.jwt_bearer"),  # PyJWT (the auth extra) only when JWTBearer is used
}


def test_every_import_by_name_of_our_own_modules_is_listed_with_its_reason() -> None:
    found = set()
    for package in ("fluxlit", "supervisor", "proxy"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and str(node.args[0].value).startswith("fluxlit")
                ):
                    found.add((str(path.relative_to(ROOT)), str(node.args[0].value)))
    assert found == BY_NAME_IMPORTS
