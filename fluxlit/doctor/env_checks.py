"""Doctor checks of the machine and the environment: Python, dependencies, the port and the files we write."""

from __future__ import annotations

import errno
import importlib.metadata
import os
import re
import socket
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from fluxlit_supervisor.state_file import state_file_base_dir

from fluxlit.doctor.model import Check, DoctorContext, failed, not_checked, passed, warned
from fluxlit.runtime.addresses import public_binds

# Oldest supported first; newer than the last tested minor only warns.
PYTHON_RANGE = ((3, 10), (3, 14))
# Distribution: (lowest supported, first unsupported major), kept in step with pyproject.toml.
SUPPORTED_VERSIONS: dict[str, tuple[str, str]] = {
    "streamlit": ("1.40", "2"),
    "fastapi": ("0.111", "1"),
    "hypercorn": ("0.17", "1"),
    "h11": ("0.14", "1"),
    "wsproto": ("1.2", "2"),
    "anyio": ("4.4", "5"),
}


def version_tuple(text: str) -> tuple[int, ...]:
    """The leading numeric release of a version string: '1.67.0rc1' -> (1, 67, 0)."""
    numbers = []
    for part in text.split("."):
        match = re.match(r"\d+", part)
        if match is None:
            break
        numbers.append(int(match.group()))
        if match.end() != len(part):
            break
    return tuple(numbers)


def check_python(ctx: DoctorContext) -> Check:
    """The interpreter is a supported CPython version."""
    found = sys.version_info[:2]
    shown = ".".join(map(str, sys.version_info[:3]))
    low, high = PYTHON_RANGE
    if found < low:
        return failed("python", f"Python {shown} is older than {low[0]}.{low[1]}", "use Python 3.10 or newer")
    if found > high:
        return warned(
            "python",
            f"Python {shown} is newer than the newest tested ({high[0]}.{high[1]})",
            "if something misbehaves, try the newest tested Python",
        )
    return passed("python", f"Python {shown} ({sys.executable})")


def check_dependencies(ctx: DoctorContext) -> Check:
    """Streamlit, FastAPI, Hypercorn, h11, wsproto and anyio are installed in supported versions."""
    found: list[str] = []
    missing: list[str] = []
    too_old: list[str] = []
    too_new: list[str] = []
    for name, (low, stop) in SUPPORTED_VERSIONS.items():
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        found.append(f"{name} {version}")
        current = version_tuple(version)
        if current < version_tuple(low):
            too_old.append(f"{name} {version} (need >={low})")
        elif current >= version_tuple(stop):
            too_new.append(f"{name} {version} (tested <{stop})")
    pins = " ".join(f"'{name}>={low},<{stop}'" for name, (low, stop) in SUPPORTED_VERSIONS.items())
    if missing or too_old:
        problems = [f"{name} not installed" for name in missing] + too_old
        return failed("dependencies", "; ".join(problems), f"pip install {pins}")
    if too_new:
        return warned(
            "dependencies", "newer than tested: " + "; ".join(too_new), f"if something breaks: pip install {pins}"
        )
    return passed("dependencies", ", ".join(found))


def check_port(ctx: DoctorContext) -> Check:
    """Every TCP bind's address is free to listen on (unix sockets: their directory is writable)."""
    settings = ctx.settings
    if settings is None:
        return not_checked(check_port, "the settings are invalid")
    binds = public_binds(settings)
    notes = []
    for bind in binds:
        problem = _bind_problem(bind)
        if problem is None:
            notes.append(f"{bind} free")
        elif problem[0] == errno.EADDRINUSE and _is_checked_instance(ctx, bind):
            notes.append(f"{bind} in use by the instance at --url")
        elif problem[0] == errno.EADDRINUSE and ctx.url:
            notes.append(f"{bind} in use (expected if the instance checked with --url runs here)")
        else:
            return failed("port", f"cannot listen on {bind}: {problem[1]}", _bind_fix(problem[0], bind))
    if not settings.binds and settings.port == 0:
        return passed("port", "port 0: any free port is picked at start")
    return passed("port", ", ".join(notes))


def _bind_problem(bind: str) -> tuple[int, str] | None:
    if bind.startswith("unix:"):
        directory = Path(bind[5:]).parent
        if os.access(directory, os.W_OK | os.X_OK):
            return None
        return errno.EACCES, f"directory {directory} is not writable"
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Same option the server sets, so a TIME_WAIT leftover does not count as "in use".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError as error:
            return error.errno or 0, error.strerror or str(error)
    return None


def _bind_fix(code: int, bind: str) -> str:
    port = bind.rpartition(":")[2]
    if code == errno.EADDRINUSE:
        return f"stop what listens there (ss -ltnp 'sport = :{port}') or choose another --port"
    if code == errno.EACCES:
        return "use a port above 1023, or grant CAP_NET_BIND_SERVICE"
    if code == errno.EADDRNOTAVAIL:
        return "use an address of this machine (0.0.0.0 listens on all)"
    return "choose another --host/--port or --bind"


def _is_checked_instance(ctx: DoctorContext, bind: str) -> bool:
    """The port is taken by the very server given with --url, which is expected."""
    if not ctx.url:
        return False
    parts = urlsplit(ctx.url)
    local = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"}
    host = bind.rpartition(":")[0].strip("[]")
    return parts.hostname in local and host in local and str(parts.port) == bind.rpartition(":")[2]


def check_state_file(ctx: DoctorContext) -> Check:
    """The directory of the upstream state file is writable."""
    settings = ctx.settings
    if settings is None:
        return not_checked(check_state_file, "the settings are invalid")
    if settings.state_file:
        directory = Path(settings.state_file).parent
        how = f"--state-file {settings.state_file}"
    else:
        directory = state_file_base_dir()
        how = "the default location"
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".fluxlit-doctor-"):
            pass
    except OSError as error:
        return failed(
            "state_file",
            f"cannot write in {directory} ({how}): {error.strerror or error}",
            "point --state-file / FLUXLIT_STREAMLIT_UPSTREAM_FILE at a writable directory",
        )
    return passed("state_file", f"{directory} is writable ({how})")
