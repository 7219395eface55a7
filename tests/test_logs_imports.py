"""JSON logging leaves structlog's console-only dependencies (rich, pygments, greenlet) unloaded in the gateway."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from fluxlit.observability.logs import _HiddenModules, import_structlog

PROBE = """
import json, sys
from fluxlit.observability.logs import configure_logging, get_logger
configure_logging("info", sys.argv[1], stream=sys.stderr)
get_logger("probe").info("configured")
loaded = sorted({name.partition(".")[0] for name in sys.modules} & {"rich", "pygments", "greenlet", "attr"})
import rich  # still importable by the app afterwards
print(json.dumps({"loaded": loaded, "rich_after": rich.__name__}))
"""


def probe(fmt: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", PROBE, fmt], capture_output=True, text=True, timeout=60, check=True)
    assert "configured" in out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.skipif(importlib.util.find_spec("rich") is None, reason="rich is not installed")
def test_json_format_imports_structlog_without_rich_pygments_or_greenlet() -> None:
    assert probe("json") == {"loaded": [], "rich_after": "rich"}


@pytest.mark.skipif(importlib.util.find_spec("rich") is None, reason="rich is not installed")
def test_console_format_keeps_rich_for_readable_tracebacks() -> None:
    loaded = probe("console")["loaded"]
    assert isinstance(loaded, list)
    assert "rich" in loaded


def test_an_already_imported_structlog_is_returned_as_it_is() -> None:
    import structlog

    assert import_structlog(console=False) is structlog


def test_hidden_modules_fail_to_import_with_their_submodules() -> None:
    hide = _HiddenModules(("fluxlit_hidden_pkg",))
    for name in ("fluxlit_hidden_pkg", "fluxlit_hidden_pkg.sub"):
        with pytest.raises(ModuleNotFoundError, match="hidden while structlog imports"):
            hide.find_spec(name)
    assert hide.find_spec("json") is None


def test_the_serve_path_leaves_structlog_unimported_until_logging_is_configured() -> None:
    """configure_logging must be structlog's first importer (so JSON lines skip rich, ~5 MiB of gateway RSS):
    the modules `fluxlit serve` and its workers import before it runs must not import structlog themselves."""
    modules = ["fluxlit.cli.main", "fluxlit.runtime.serve_command", "fluxlit.runtime.serve_plan"]
    modules += ["fluxlit.runtime.gateway_worker", "fluxlit.gateway.router", "fluxlit.testing"]
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint('structlog' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
