"""The `fluxlit` command line: serve an app, show the effective configuration."""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

import click

from fluxlit import __version__
from fluxlit.cli.config_warnings import env_warnings, warning
from fluxlit.cli.options import settings_options, settings_options_of
from fluxlit.cli.pidfile import held_pidfile, pidfile_path
from fluxlit.cli.support import fail, fail_unexpectedly, resolve, resolve_with_target
from fluxlit.cli.workbench import workbench_command
from fluxlit.errors import FluxLitError, TargetError
from fluxlit.exit_codes import ExitCode

F = TypeVar("F", bound=Callable[..., Any])

EPILOG = (
    "Settings come from, highest first: flags, FLUXLIT_* environment variables, fluxlit.toml "
    "(or [tool.fluxlit] in pyproject.toml), the app's own settings, then defaults. "
    "Run 'fluxlit config' to see every value and where it came from."
)


def _exit_on_early_signal(signum: int, frame: FrameType | None) -> None:
    sys.exit(int(ExitCode.OK))


class _LazyGroup(click.Group):
    """Commands kept in their own modules load only when used: `fluxlit serve` must not pay for doctor's imports."""

    lazy = {
        "dev": "fluxlit.cli.dev:dev",
        "doctor": "fluxlit.doctor.registry:doctor",
        "shutdown": "fluxlit.cli.shutdown:shutdown",
    }

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own ways out: usage errors (2), --help, Ctrl-C at a prompt
        except Exception as error:
            fail_unexpectedly(error)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EPILOG,
)
@click.version_option(__version__, prog_name="fluxlit")
def main() -> None:
    """FastAPI and Streamlit on one port.

    \b
    fluxlit serve app:app      serve the API under /api and the Streamlit pages at /
    fluxlit run app:app        the same, under fluxlit 0.13's name, with a pidfile
    fluxlit shutdown           stop the run that wrote ./.fluxlit-dev.pid
    fluxlit config app:app     show every effective setting and its source
    """


@main.command(epilog=EPILOG)
@settings_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON: {settings: [{name, value, source, env, flag, toml_key}], warnings: [{level, code, message}]}.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 1 on any warning, such as a FLUXLIT_* variable FluxLit does not read (a typo, or a fluxlit 0.13 "
    "setting this version lacks). Bad values and unknown project-file keys exit 2 with or without it.",
)
def config(as_json: bool, strict: bool, **cli_values: Any) -> None:
    """Show the effective configuration and where each value came from.

    TARGET is the app, as for 'fluxlit serve' (default: FLUXLIT_APP, then the project file, then app:app).
    The target is imported so that settings given in its code (FluxLit(settings=...)) show up as "app";
    when it cannot be imported, the other sources are still shown and a warning names the problem.
    Warnings go to stderr: FLUXLIT_* variables nothing reads, an app that did not import.
    """
    warnings = env_warnings(os.environ)
    try:
        try:
            resolved, _ = resolve_with_target(cli_values)
        except TargetError as error:
            resolved = resolve(cli_values)
            warnings.append(warning("app_settings_not_shown", f"app settings not shown: {error}"))
    except FluxLitError as error:
        fail(error)
    rows = resolved.report()
    if as_json:
        report = {"project_file": resolved.project_file, "settings": rows, "warnings": warnings}
        click.echo(json.dumps(report, indent=2))
    else:
        width = max(len(row["name"]) for row in rows)
        vwidth = max(len(json.dumps(row["value"])) for row in rows)
        for row in rows:
            click.echo(f"{row['name']:<{width}}  {json.dumps(row['value']):<{vwidth}}  {row['source']}")
        click.echo(f"\nproject file: {resolved.project_file or 'none found'}")
    for entry in warnings:
        click.echo(f"fluxlit: warning: {entry['message']}", err=True)
    if strict and warnings:
        sys.exit(1)  # the reference's code for "warnings under --strict"; 2 stays "this cannot run"


@main.command(epilog=EPILOG)
@settings_options
def serve(**cli_values: Any) -> None:
    """Serve TARGET: the API under the API prefix and the Streamlit pages on the same port.

    TARGET is 'module:attr', 'module:factory()' or 'path/to/app.py:attr'
    (default: FLUXLIT_APP, then the project file, then app:app).
    Stops gracefully on SIGTERM/SIGINT; SIGHUP restarts the Streamlit child.
    Exit codes: 0 clean stop, 2 usage, 3 target import failed, 4 Streamlit failed to start,
    5 crash budget exhausted, 6 port unavailable, 7 Streamlit exited with --on-child-exit=exit.
    """
    _serve(cli_values, with_pidfile=False)


@main.command(epilog=EPILOG)
@settings_options_of("run")
@click.option("--workbench", is_flag=True, help="Serve as 'fluxlit workbench' does (fluxlit 0.13's run --workbench).")
def run(workbench: bool, **cli_values: Any) -> None:
    """Serve TARGET exactly as 'fluxlit serve' does, and write a pidfile for 'fluxlit shutdown'.

    'run' is the name fluxlit 0.13 gives this command (its docs, unit files and Kubernetes examples use it):
    the same server, flags and exit codes as 'fluxlit serve' (see its --help), with the reference's
    --proxy-headers for --trust-proxy. The pidfile is ./.fluxlit-dev.pid, or --pidfile PATH, mode 0644,
    removed on exit; a stale one is replaced, and while the process it names runs, 'run' exits 2 instead.
    Containers, whose process manager stops the server, want --no-pidfile.
    """
    if workbench:
        click.get_current_context().invoke(workbench_verb, **cli_values)
        return
    _serve(cli_values, with_pidfile=True)


def _serve(cli_values: dict[str, Any], *, with_pidfile: bool) -> None:
    """`serve` and `run`: one implementation, so the two names cannot drift apart."""
    # As PID 1 the kernel ignores SIGTERM without a handler: install one before the slow imports below.
    signal.signal(signal.SIGTERM, _exit_on_early_signal)
    from fluxlit_supervisor import exit_process  # after the handler, like the imports below

    from fluxlit.runtime.early_start import streamlit_started_early
    from fluxlit.runtime.serve_command import serve_command

    try:
        # Streamlit boots (~0.5 s) while the target, FastAPI and the gateway import: not one after the other.
        with streamlit_started_early(resolve(cli_values)) as early:
            resolved, target = resolve_with_target(cli_values)
            # Claimed once the app's own settings are known (it may name the pidfile), before the public port is bound.
            with held_pidfile(pidfile_path(resolved.settings) if with_pidfile else None):
                code = serve_command(resolved, target, early)
        # Not sys.exit: a `def` route still sleeping in its worker thread would hold the exit until it returns.
        # Runs on every stop (slow tests assert the exit codes), but Python 3.11's tracer loses this frame once
        # anyio.run has returned in it (cpython#106749), so coverage cannot see it there.
        exit_process(int(code))  # pragma: no cover - measured as missed on 3.11 though it runs: see above
    except FluxLitError as error:
        fail(error)


@main.command("workbench", epilog=EPILOG)
@settings_options_of("workbench")
def workbench_verb(**cli_values: Any) -> None:
    """Serve TARGET behind an IDE's port forwarding (Posit Workbench, VS Code, JupyterHub).

    Same as 'fluxlit serve' with --trust-proxy on, so links follow the proxy's X-Forwarded-* headers
    (from peers in --forwarded-allow-ips, loopback by default); prints the local and proxied URLs.
    Use --root-path when the proxy passes its prefix through instead of stripping it.
    Writes a pidfile for 'fluxlit shutdown', as 'fluxlit run' does.
    """
    signal.signal(signal.SIGTERM, _exit_on_early_signal)
    workbench_command(**cli_values)


__all__ = ["ExitCode", "main"]
