"""Where the bundled Streamlit entrypoint lives, and the child command line that runs it."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from fluxlit.errors import ConfigError

# Flags the supervisor owns: a user value would break the port check, the loopback bind or the mount.
RESERVED_FLAGS = ("--server.port", "--server.address", "--server.baseUrlPath", "--server.headless")


def streamlit_main_path() -> Path:
    """The bundled Streamlit script that renders a FluxLit app's pages (what `fluxlit serve` runs)."""
    return Path(__file__).parent / "streamlit" / "main.py"


def streamlit_argv(port: int, *, root_path: str, extra: Sequence[str] = (), dev: bool = False) -> list[str]:
    """The child's argv: headless, loopback only, explicit port, no telemetry, no file watcher outside dev."""
    for arg in extra:
        name = arg.split("=", 1)[0]
        if name in RESERVED_FLAGS:
            raise ConfigError(f"streamlit_run_args may not set {name}: FluxLit chooses it (got {arg!r})")
    argv = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(streamlit_main_path()),
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "auto" if dev else "none",
        "--server.runOnSave",
        "false",
    ]
    if root_path:
        argv += ["--server.baseUrlPath", root_path]
    return argv + list(extra)
