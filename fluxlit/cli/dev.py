"""`fluxlit dev`: `fluxlit serve` restarted from scratch whenever a watched .py file changes.

A parent watcher runs `python -m fluxlit serve ...` as a child in its own session and polls file mtimes (no
extra dependency, works on every filesystem including bind mounts). On a change it stops the whole child
(gateway, API and Streamlit alike, so nothing keeps stale code) and starts a fresh one on the same port; the
browser's Streamlit client reconnects by itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import click
from fluxlit_supervisor import SpawnOptions, pick_free_port, popen_child, stop_process_group_blocking

from fluxlit.cli.main import serve
from fluxlit.cli.options import setting_option
from fluxlit.cli.pidfile import held_pidfile, pidfile_path
from fluxlit.cli.support import fail, resolve
from fluxlit.config.settings import SPECS_BY_NAME
from fluxlit.errors import FluxLitError
from fluxlit.exit_codes import ExitCode
from fluxlit.targets import parse_target

POLL_INTERVAL_S = 0.5
# Editors save in bursts (temp file, rename, format-on-save): wait for the burst to end before restarting.
DEBOUNCE_S = 0.25
STOP_GRACE_S = 20.0
KILL_WAIT_S = 10.0
# serve's own stop needs a SIGTERM (it stops Streamlit in order): its parent-death signal too.
SERVE_SPAWN = SpawnOptions(death_signal=signal.SIGTERM)
WATCHED_SUFFIXES = (".py",)
WATCHED_NAMES = ("fluxlit.toml", "pyproject.toml")
SKIPPED_DIRS = {"__pycache__", "node_modules", "site-packages", "build", "dist", "venv", "env"}
MAX_WATCHED_FILES = 20_000
# Exit codes of serve that no file change can fix (a busy port): dev exits with them instead of waiting.
FATAL_EXIT_CODES = frozenset({int(ExitCode.PORT_UNAVAILABLE)})

Snapshot = dict[str, int]


def _log(message: str) -> None:
    click.echo(f"fluxlit dev: {message}", err=True)


def _skip_dir(path: Path) -> bool:
    return path.name.startswith(".") or path.name in SKIPPED_DIRS or (path / "pyvenv.cfg").exists()


def snapshot(roots: Iterable[Path]) -> Snapshot:
    """Modification times of the watched files under ``roots`` (hidden dirs, caches and virtualenvs skipped)."""
    seen: Snapshot = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            base = Path(dirpath)
            dirnames[:] = [d for d in dirnames if not _skip_dir(base / d)]
            for name in filenames:
                if name.endswith(WATCHED_SUFFIXES) or name in WATCHED_NAMES:
                    path = base / name
                    try:
                        seen[str(path)] = path.stat().st_mtime_ns
                    except OSError:
                        continue  # deleted between listing and stat: the next poll sees it gone
                    if len(seen) >= MAX_WATCHED_FILES:
                        return seen
    return seen


def changed_paths(before: Snapshot, after: Snapshot) -> list[str]:
    """Files added, removed or modified between two snapshots, sorted."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def watch_roots(target: str, cwd: Path, extra: Sequence[str] = ()) -> list[Path]:
    """The cwd, the target file's (or module's) directory when outside it, and any --watch directories."""
    roots = [cwd.resolve()]
    candidates = [Path(p) for p in extra]
    try:
        parsed = parse_target(target)
    except Exception:  # a bad target is reported by `serve` itself, with its own exit code
        parsed = None
    if parsed is not None and parsed.file is not None:
        candidates.append((cwd / parsed.file).parent)
    for candidate in candidates:
        resolved = (cwd / candidate).resolve()
        if resolved.is_dir() and not any(resolved == r or r in resolved.parents for r in roots):
            roots.append(resolved)
    return roots


class DevRunner:
    """Owns one `serve` child at a time; restarts it on change, stops it on a signal."""

    def __init__(self, serve_argv: Sequence[str], roots: Sequence[Path], *, poll_interval: float) -> None:
        self.serve_argv = list(serve_argv)
        self.roots = list(roots)
        self.poll_interval = poll_interval
        self.stop_signal: int | None = None
        self.wake = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None

    def request_stop(self, signum: int, frame: FrameType | None = None) -> None:
        self.stop_signal = signum
        self.wake.set()

    def start_child(self) -> None:
        self.child = popen_child(self.serve_argv, SERVE_SPAWN)

    def stop_child(self, signum: int = signal.SIGTERM) -> int | None:
        """Signal the child's process group, wait (bounded), SIGKILL what is left; returns its exit code."""
        if self.child is None:
            return None
        return stop_process_group_blocking(
            self.child, STOP_GRACE_S, first_signal=signum, kill_wait=KILL_WAIT_S, on_kill=_report_kill
        )

    def run(self) -> int:
        before = snapshot(self.roots)
        _log(f"watching {len(before)} files under {', '.join(map(str, self.roots))}")
        self.start_child()
        reported_exit = False
        while self.stop_signal is None:
            self.wake.wait(self.poll_interval)
            if self.stop_signal is not None:
                break
            child = self.child
            if child is not None and child.poll() is not None and not reported_exit:
                if child.returncode in FATAL_EXIT_CODES:
                    _log(f"serve exited with code {child.returncode}, which no code change can fix: stopping")
                    return child.returncode
                reported_exit = True
                _log(f"serve exited with code {child.returncode}; waiting for a change to start it again")
            after = snapshot(self.roots)
            if after == before:
                continue
            time.sleep(DEBOUNCE_S)
            after = snapshot(self.roots)
            changed = changed_paths(before, after)
            before = after
            shown = ", ".join(os.path.relpath(p) for p in changed[:3]) + (" ..." if len(changed) > 3 else "")
            _log(f"{shown} changed: restarting")
            self.stop_child()
            if self.stop_signal is None:
                self.start_child()
                reported_exit = False
        code = self.stop_child(self.stop_signal or signal.SIGTERM)
        return 0 if code is None else _exit_status(code)


def _report_kill(pid: int, grace: float, forced: bool) -> None:
    _log(f"serve (pid {pid}) did not stop within {grace:.0f}s: killing it")


def _exit_status(returncode: int) -> int:
    # Popen reports death by signal N as -N; a shell would say 128 + N.
    return 128 - returncode if returncode < 0 else returncode


def _run_without_reload(args: list[str], pidfile: str | None, no_pidfile: bool | None, *, workbench: bool) -> None:
    """`dev --no-reload` is fluxlit 0.13's `run`: become that command, pidfile flags and all."""
    verb = "workbench" if workbench else "run"
    pidfile_args = (["--pidfile", pidfile] if pidfile else []) + (["--no-pidfile"] if no_pidfile else [])
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "fluxlit", verb, *args, *pidfile_args])


def _concrete_port_args(settings: Any) -> list[str]:
    """Port 0 means any: choose one now so every restart serves on the same port."""
    if settings.binds or settings.port != 0:
        return []
    return ["--port", str(pick_free_port(settings.host))]


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": ["-h", "--help"]},
)
@click.option(
    "--watch",
    "watch_dirs",
    multiple=True,
    metavar="DIR",
    help="Also watch DIR (repeatable). The current directory and the target's directory are always watched.",
)
@click.option(
    "--poll-interval",
    default=POLL_INTERVAL_S,
    show_default=True,
    type=click.FloatRange(min=0.05),
    metavar="SECONDS",
    help="How often to check file modification times.",
)
# fluxlit 0.13's reload switches, so its Makefiles and scripts run unchanged.
@click.option(
    "--reload/--no-reload",
    default=True,
    show_default=True,
    help="Restart on change; --no-reload runs 'fluxlit run' (no watching) with the same arguments.",
)
@click.option(
    "--reload-scope",
    type=click.Choice(("full", "gateway")),
    default="full",
    show_default=True,
    help="What restarts on a change. FluxLit always restarts everything (API, gateway, Streamlit), so the API "
    "and the pages never run different code; 'gateway' is accepted for fluxlit 0.13 and reloads everything too.",
)
@click.option(
    "--workbench",
    is_flag=True,
    help="Turn --trust-proxy on, as 'fluxlit workbench' does (unless a trust flag is given).",
)
# The watcher, not the serve it restarts, owns the pidfile: `fluxlit shutdown` must stop the watching too.
@setting_option(SPECS_BY_NAME["pidfile"])
@setting_option(SPECS_BY_NAME["no_pidfile"])
@click.argument("serve_args", nargs=-1, type=click.UNPROCESSED, metavar="[TARGET] [SERVE OPTIONS]...")
def dev(
    watch_dirs: tuple[str, ...],
    poll_interval: float,
    reload: bool,
    reload_scope: str,
    workbench: bool,
    pidfile: str | None,
    no_pidfile: bool | None,
    serve_args: tuple[str, ...],
) -> None:
    """Serve TARGET like 'fluxlit serve' and restart everything when a .py file changes.

    Takes every 'fluxlit serve' flag (see 'fluxlit serve --help'). On a change under the current directory
    (or the target's, or a --watch DIR) the API, the gateway and Streamlit restart together on the same port,
    and open browser tabs reconnect by themselves. SIGTERM/SIGINT stop the server; the exit code is its own.
    Writes a pidfile for 'fluxlit shutdown', as 'fluxlit run' does.
    """
    args = list(serve_args)
    if not reload:
        _run_without_reload(args, pidfile, no_pidfile, workbench=workbench)
    if reload_scope == "gateway":
        _log("--reload-scope gateway reloads everything here: the API and the pages always run the same code")
    try:
        with serve.make_context("fluxlit dev", list(args)) as ctx:
            resolved = resolve({**ctx.params, "pidfile": pidfile, "no_pidfile": no_pidfile})
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except FluxLitError as error:
        fail(error)
    settings = resolved.settings
    args += _concrete_port_args(settings)
    if workbench and resolved.sources["trust_proxy"] != "cli":
        args.append("--trust-proxy")
    runner = DevRunner(
        [sys.executable, "-m", "fluxlit", "serve", *args],
        watch_roots(settings.target, Path.cwd(), watch_dirs),
        poll_interval=poll_interval,
    )
    try:
        with held_pidfile(pidfile_path(settings)):
            signal.signal(signal.SIGTERM, runner.request_stop)
            signal.signal(signal.SIGINT, runner.request_stop)
            code = runner.run()
    except FluxLitError as error:
        fail(error)
    sys.exit(code)
