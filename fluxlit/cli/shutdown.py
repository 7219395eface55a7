"""`fluxlit shutdown`: stop the run a pidfile names, by its PID only, with the reference's exit codes."""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import sys
import time
from pathlib import Path

import click

from fluxlit.cli.pidfile import PROC, Owner, inspect_pidfile, is_running, pidfile_location, release_pidfile
from fluxlit.cli.support import fail, resolve
from fluxlit.config.parsers import DEFAULT_PIDFILE
from fluxlit.errors import FluxLitError

POLL_S = 0.05
KILL_WAIT_S = 2.0  # SIGKILL cannot be caught: the kernel takes only as long as freeing the memory


class ShutdownCode(enum.IntEnum):
    """The reference's (fluxlit 0.13) exit codes, which scripts around it test."""

    STOPPED = 0  # stopped, or nothing to stop: the pidfile was stale or invalid (and is removed)
    STILL_RUNNING = 1  # still running after --wait, or not ours to signal
    NO_PIDFILE = 2


def _gone(pid: int, proc: Path) -> bool:
    # The start-time test of is_running is moot here: the PID was checked a moment ago.
    return not is_running(pid, written_at=float("inf"), proc=proc)


def _wait_gone(pid: int, seconds: float, proc: Path) -> bool:
    deadline = time.monotonic() + seconds
    while not _gone(pid, proc):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def stop_pidfile_owner(path: Path, *, force: bool, wait: float, proc: Path = PROC) -> tuple[ShutdownCode, str]:
    """SIGTERM the process `path` names, wait up to `wait` s, then (`force`) SIGKILL; the code and what happened."""
    state = inspect_pidfile(path, proc)
    if state.owner is Owner.MISSING:
        return ShutdownCode.NO_PIDFILE, (
            f"no pidfile at {path}, so nothing to stop: give the --pidfile PATH (FLUXLIT_PIDFILE) the run was started "
            "with, or run this in its directory; a run started with --no-pidfile writes none"
        )
    if state.owner is Owner.INVALID or state.pid is None:
        _remove(path)
        return ShutdownCode.STOPPED, f"removed {path}: it held no process id"
    pid = state.pid
    if state.owner is Owner.STALE:
        _remove(path)
        return ShutdownCode.STOPPED, f"removed the stale pidfile {path}: process {pid} is not running"
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        _remove(path)
        return ShutdownCode.STOPPED, f"process {pid} exited before the signal reached it; removed {path}"
    except PermissionError as error:
        return ShutdownCode.STILL_RUNNING, (
            f"not allowed to signal process {pid} ({error.strerror}): run 'fluxlit shutdown' as the user who started it"
        )
    if _wait_gone(pid, wait, proc):
        release_pidfile(path, pid)  # a clean stop removes it itself; a crash on the way out may not
        return ShutdownCode.STOPPED, f"stopped process {pid}"
    if force:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if _wait_gone(pid, KILL_WAIT_S, proc):
            release_pidfile(path, pid)
            return ShutdownCode.STOPPED, f"killed process {pid}: it was still running {wait:g}s after SIGTERM"
    return ShutdownCode.STILL_RUNNING, (
        f"process {pid} is still running {wait:g}s after SIGTERM: wait longer (--wait SECONDS)"
        + ("" if force else " or kill it (--force)")
    )


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--pidfile",
    default=None,
    metavar="PATH",
    help=f"The pidfile of the run to stop (default: {DEFAULT_PIDFILE} in the current directory). "
    "[env: FLUXLIT_PIDFILE]",
)
@click.option("--force", "-f", is_flag=True, help="SIGKILL the process when it is still running after --wait.")
@click.option(
    "--wait",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="How long to wait for the process to exit after SIGTERM.",
)
def shutdown(pidfile: str | None, force: bool, wait: float) -> None:
    """Stop the 'fluxlit run', 'dev' or 'workbench' that wrote the pidfile, as 'fluxlit shutdown' of fluxlit 0.13 does.

    Sends SIGTERM to the process id in the pidfile (that process only: it stops its own children), waits up to
    --wait seconds for it to exit, then with --force sends SIGKILL.
    Exit codes: 0 stopped (or the pidfile was stale or invalid: it is removed), 1 still running or not allowed
    to signal it, 2 no pidfile.
    """
    try:
        path = pidfile_location(resolve({"pidfile": pidfile}).settings)
    except FluxLitError as error:
        fail(error)
    code, message = stop_pidfile_owner(path, force=force, wait=wait)
    click.echo(f"fluxlit shutdown: {message}", err=code is not ShutdownCode.STOPPED)
    sys.exit(int(code))
