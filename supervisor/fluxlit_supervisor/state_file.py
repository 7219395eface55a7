"""The upstream state file: atomic 0600 writes, tolerant reads, and a safe per-run default location."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fluxlit_supervisor.state import StateHub, UpstreamState

logger = logging.getLogger("supervisor")

UpstreamSource = Literal["file", "env", "none"]

# States whose port no longer answers: a file left in one of these is stale.
_DEAD_STATES = frozenset({"stopped", "failed"})
# The reference's plain format: a URL alone (it writes `http://127.0.0.1:<port>`), optionally with a path.
_LEGACY_URL = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}(/[^\s?#]*)?$")
_MAX_FILE_BYTES = 64 * 1024


def publish_state(hub: StateHub, path: Path | None, state: UpstreamState) -> None:
    """Hand `state` to the hub's readers and to the state file when there is one. A failed write is a warning, not
    a stop: the run goes on, and only processes that read the file fall behind."""
    hub.publish(state)
    if path is None:
        return
    try:
        write_state_file(path, state)
    except OSError as exc:
        logger.warning("cannot write the state file %s: %s", path, exc, extra={"state_file": str(path)})


def write_state_file(path: Path, state: UpstreamState) -> None:
    """Write `state` as JSON to `path` atomically, mode 0600, replacing (never following) a symlink there."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # O_EXCL|O_NOFOLLOW: a file or symlink planted under the temporary name makes us fail, not write through.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, state.to_json().encode("utf-8") + b"\n")
        finally:
            os.close(fd)
        # rename() replaces a symlink at `path` itself; its target is never opened.
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def remove_state_file(path: Path) -> None:
    """Remove the state file if it is there (a symlink is removed, not its target)."""
    _unlink_quietly(path)


@dataclass(frozen=True)
class ParsedUpstream:
    """What a state file says: a usable URL, or why it is not usable."""

    url: str | None
    problem: str = ""
    child_pid: int | None = None


def parse_upstream_text(text: str) -> ParsedUpstream:
    """Interpret state file content: JSON `UpstreamState` or a legacy plain `http://host:port` line."""
    stripped = text.strip()
    if not stripped:
        return ParsedUpstream(url=None, problem="the file is empty")
    if _LEGACY_URL.match(stripped):
        return ParsedUpstream(url=stripped.rstrip("/"))
    try:
        state = UpstreamState.from_json(stripped)
    except ValueError as exc:
        return ParsedUpstream(url=None, problem=f"neither a URL nor upstream state JSON ({exc})")
    if state.state in _DEAD_STATES:
        return ParsedUpstream(url=None, problem=f"the upstream is {state.state} (stale file)")
    if state.url is None:
        return ParsedUpstream(url=None, problem=f"the upstream is {state.state} with no port yet")
    return ParsedUpstream(url=state.url, child_pid=state.pid)


@dataclass(frozen=True)
class ResolvedUpstream:
    """Where the upstream is, which source said so, and (when the file was passed over) why."""

    url: str | None
    source: UpstreamSource
    file_problem: str = ""


def resolve_upstream(file_path: str | None, env_url: str | None) -> ResolvedUpstream:
    """The seed's precedence, without logging: a set file that names a live upstream wins; otherwise `env_url`.

    A file passed over (missing, empty, unreadable, not a URL, or stale: its own state says stopped or failed, or
    its child pid is gone) leaves `file_problem` set. Trailing slashes are stripped from either URL.
    """
    problem = ""
    if file_path:
        parsed = _read_file(file_path)
        if parsed.url is not None and parsed.child_pid is not None and not _pid_alive(parsed.child_pid):
            parsed = ParsedUpstream(url=None, problem=f"its child pid {parsed.child_pid} is gone (stale file)")
        if parsed.url is not None:
            return ResolvedUpstream(parsed.url.rstrip("/"), "file")
        problem = parsed.problem
    env = (env_url or "").strip().rstrip("/")
    return ResolvedUpstream(env or None, "env" if env else "none", problem)


def read_upstream(file_path: str | None, env_url: str | None) -> tuple[str | None, UpstreamSource]:
    """`resolve_upstream`, with a warning when the file is passed over."""
    resolved = resolve_upstream(file_path, env_url)
    if resolved.file_problem:
        fallback = "falling back to the environment URL" if resolved.url else "and no environment URL is set"
        logger.warning(
            "upstream state file %s is unusable: %s; %s",
            file_path,
            resolved.file_problem,
            fallback,
            extra={"state_file": file_path, "problem": resolved.file_problem},
        )
    return resolved.url, resolved.source


def state_file_base_dir() -> Path:
    """Where default state files live: $XDG_RUNTIME_DIR when it is a directory, else the temp dir."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    return Path(runtime) if runtime and os.path.isdir(runtime) else Path(tempfile.gettempdir())


def default_state_file_path() -> Path:
    """A per-run path `upstream-<pid>.json` in a private (0700) directory under `state_file_base_dir()`."""
    base = state_file_base_dir()
    directory = base / f"supervisor-{os.getuid()}" if hasattr(os, "getuid") else base / "supervisor"
    if not _ensure_private_dir(directory):
        # Someone else owns (or loosened, or symlinked) the shared name: use a fresh private one instead.
        directory = Path(tempfile.mkdtemp(prefix="supervisor-", dir=base))
    return directory / f"upstream-{os.getpid()}.json"


def _ensure_private_dir(directory: Path) -> bool:
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        info = os.lstat(directory)
    except OSError:
        return False
    owned = not hasattr(os, "getuid") or info.st_uid == os.getuid()
    return stat.S_ISDIR(info.st_mode) and owned and stat.S_IMODE(info.st_mode) & 0o077 == 0


def _read_file(file_path: str) -> ParsedUpstream:
    try:
        with open(file_path, "rb") as handle:
            data = handle.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return ParsedUpstream(url=None, problem="it does not exist")
    except OSError as exc:
        return ParsedUpstream(url=None, problem=f"it cannot be read ({exc.strerror or exc})")
    if len(data) > _MAX_FILE_BYTES:
        return ParsedUpstream(url=None, problem=f"it is larger than {_MAX_FILE_BYTES} bytes")
    return parse_upstream_text(data.decode("utf-8", errors="replace"))


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
