"""Where the bundled Streamlit entrypoint lives, the child command line that runs it, and what it will send."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

from fluxlit.errors import ConfigError

# Flags the supervisor owns: a user value would break the port check, the loopback bind or the mount.
RESERVED_FLAGS = ("--server.port", "--server.address", "--server.baseUrlPath", "--server.headless")


def streamlit_main_path() -> Path:
    """The bundled Streamlit script that renders a FluxLit app's pages (what `fluxlit serve` runs)."""
    return Path(__file__).with_name("main.py")


def streamlit_argv(port: int, *, root_path: str, extra: Sequence[str] = ()) -> list[str]:
    """The child's argv: headless, loopback only, explicit port, no telemetry, no file watcher (`fluxlit dev`
    restarts the whole server itself)."""
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
        "none",
        "--server.runOnSave",
        "false",
    ]
    if root_path:
        argv += ["--server.baseUrlPath", root_path]
    return argv + list(extra)


# Streamlit's own default for server.maxMessageSize, in MB (10**6 bytes, as Streamlit multiplies it).
STREAMLIT_MAX_MESSAGE_MB = 200
_MAX_MESSAGE_FLAG = "--server.maxMessageSize"
_MAX_MESSAGE_ENV = "STREAMLIT_SERVER_MAX_MESSAGE_SIZE"


def streamlit_max_message_bytes(
    extra: Sequence[str] = (), env: Mapping[str, str] | None = None, cwd: Path | None = None, home: Path | None = None
) -> int:
    """The largest message the Streamlit child will send: its server.maxMessageSize, found where Streamlit looks
    (flags in streamlit_run_args, then STREAMLIT_SERVER_MAX_MESSAGE_SIZE, then .streamlit/config.toml in the
    working directory, then in the home directory), else its default. A value Streamlit would refuse is skipped:
    Streamlit reports it itself when it starts."""
    env = os.environ if env is None else env
    candidates: list[object] = []
    for index, arg in enumerate(extra):
        name, sep, value = arg.partition("=")
        if name == _MAX_MESSAGE_FLAG:
            candidates.append(value if sep else (extra[index + 1] if index + 1 < len(extra) else None))
    candidates.reverse()  # the last flag wins
    candidates.append(env.get(_MAX_MESSAGE_ENV))
    for directory in (cwd or Path.cwd(), home or Path.home()):
        candidates.append(_config_toml_max_message(directory / ".streamlit" / "config.toml"))
    for candidate in candidates:
        megabytes = _positive_int(candidate)
        if megabytes is not None:
            return megabytes * 1_000_000
    return STREAMLIT_MAX_MESSAGE_MB * 1_000_000


def _config_toml_max_message(path: Path) -> object:
    try:
        with path.open("rb") as file:
            server = tomllib.load(file).get("server", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return server.get("maxMessageSize") if isinstance(server, dict) else None


def _positive_int(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number > 0 else None
