"""The pidfile of `fluxlit run`, `dev` and `workbench`: claimed only when no live process owns it, removed on exit.

The format is the reference's (fluxlit 0.13): the decimal PID and a newline, mode 0644, so either version's
`fluxlit shutdown` reads the other's. A PID alone may name another process later: PIDs are reused, and a
container's first process is PID 1 on every start. So a recorded PID counts as the owner only while that process
is alive, is not a zombie, and (where /proc tells) did not start after the file was written.
"""

from __future__ import annotations

import contextlib
import enum
import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

from fluxlit.config.settings import Settings
from fluxlit.errors import ConfigError

PIDFILE_MODE = 0o644
PROC = Path("/proc")
# How much younger than its pidfile a process may look and still be its writer. /proc's boot time is whole seconds,
# and it moves with a step of the wall clock (an NTP sync after boot), while the file's mtime does not. A PID reused
# after a reboot names a process younger by far more than that.
START_SLACK_S = 60.0
NO_PIDFILE_HINT = "give another --pidfile PATH (FLUXLIT_PIDFILE), or --no-pidfile (FLUXLIT_NO_PIDFILE=1)"


class Owner(enum.Enum):
    """What a pidfile says about its process."""

    MISSING = "missing"  # no file
    INVALID = "invalid"  # not a positive decimal PID
    STALE = "stale"  # that process is gone (or the PID now names another one)
    LIVE = "live"  # that process runs


@dataclass(frozen=True)
class PidfileState:
    path: Path
    owner: Owner
    pid: int | None = None


def pidfile_location(settings: Settings, cwd: Path | None = None) -> Path:
    """The absolute pidfile of a run, fixed at start so that a chdir in the app cannot move it."""
    return (cwd or Path.cwd()) / Path(settings.pidfile).expanduser()


def pidfile_path(settings: Settings, cwd: Path | None = None) -> Path | None:
    """The pidfile a run writes, or None when it writes none (--no-pidfile, FLUXLIT_NO_PIDFILE)."""
    return None if settings.no_pidfile else pidfile_location(settings, cwd)


def process_started_at(pid: int, proc: Path = PROC) -> float | None:
    """When `pid` started (seconds since the epoch) per /proc, or None where /proc does not say (macOS)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
        boot = next(line for line in (proc / "stat").read_text().splitlines() if line.startswith("btime "))
    except (OSError, StopIteration):
        return None
    # Fields after the command name, which may hold spaces and parentheses: state is field 3, starttime field 22.
    fields = stat.rsplit(")", 1)[1].split()
    return int(boot.split()[1]) + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def is_zombie(pid: int, proc: Path = PROC) -> bool:
    """True for a process that exited and waits for its parent to reap it: signals reach it, but it is gone."""
    try:
        return (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def is_running(pid: int, *, written_at: float, proc: Path = PROC) -> bool:
    """Whether `pid` is the live process that wrote a pidfile at `written_at` (its mtime)."""
    if pid == os.getpid():
        return False  # this process did not write it: a previous run with the same PID did (PID 1 in containers)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if is_zombie(pid, proc):
        return False
    started = process_started_at(pid, proc)
    return started is None or started <= written_at + START_SLACK_S


def inspect_pidfile(path: Path, proc: Path = PROC) -> PidfileState:
    """Read `path` and say whether a live process owns it."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
        written_at = path.stat().st_mtime
    except FileNotFoundError:
        return PidfileState(path, Owner.MISSING)
    except OSError:
        return PidfileState(path, Owner.INVALID)  # a directory, or unreadable: no PID to act on
    raw = text.strip()
    # Only a positive PID: os.kill(0) and os.kill(-1) would signal a whole process group, or everything.
    if not raw.isdecimal() or int(raw) <= 0:
        return PidfileState(path, Owner.INVALID)
    pid = int(raw)
    owner = Owner.LIVE if is_running(pid, written_at=written_at, proc=proc) else Owner.STALE
    return PidfileState(path, owner, pid)


def _busy(state: PidfileState) -> ConfigError:
    return ConfigError(
        f"the pidfile {state.path} belongs to process {state.pid}, which is still running: stop it with "
        f"'fluxlit shutdown --pidfile {state.path}', or {NO_PIDFILE_HINT}"
    )


def _write_exclusive(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PIDFILE_MODE)
    try:
        os.fchmod(fd, PIDFILE_MODE)  # the mode the reference documents, whatever the umask
        os.write(fd, data)
    finally:
        os.close(fd)


def claim_pidfile(path: Path, pid: int | None = None, proc: Path = PROC) -> None:
    """Write `pid` (default: this process) to `path`, replacing a stale file; ConfigError when a live one owns it."""
    data = f"{pid or os.getpid()}\n".encode("ascii")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = inspect_pidfile(path, proc)
        if state.owner is Owner.LIVE:
            raise _busy(state)
        if state.owner is not Owner.MISSING:
            path.unlink()
        # Exclusive creation: of two runs starting at once, one gets the file and the other an error ("File exists").
        _write_exclusive(path, data)
    except OSError as error:
        raise ConfigError(f"cannot write the pidfile {path} ({error.strerror}): {NO_PIDFILE_HINT}") from None


def release_pidfile(path: Path, pid: int | None = None) -> None:
    """Remove `path` if it still names `pid` (default: this process): a later run may own it by now."""
    with contextlib.suppress(OSError):
        if path.read_text(encoding="ascii").strip() == str(pid or os.getpid()):
            path.unlink()


@contextlib.contextmanager
def held_pidfile(path: Path | None) -> Generator[None, None, None]:
    """Own `path` for the duration of the block (nothing when None); removed however the block ends."""
    if path is None:
        yield
        return
    claim_pidfile(path)
    try:
        yield
    finally:
        release_pidfile(path)
