"""What every `fluxlit` command shares: resolving settings and the target, and turning failures into exit codes.

Its own module so that the commands kept outside cli.py (`workbench`, `dev`) use it without importing cli.py,
which imports them.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any, NoReturn

import click

from fluxlit.config.sources import ResolvedSettings, load_settings
from fluxlit.errors import FluxLitError
from fluxlit.exit_codes import ExitCode
from fluxlit.targets import LoadedTarget, load_target


def resolve(cli_values: dict[str, Any]) -> ResolvedSettings:
    """Settings from CLI values (None = not given) over env, project file and defaults."""
    return load_settings(cli_values)


def resolve_with_target(cli_values: dict[str, Any]) -> tuple[ResolvedSettings, LoadedTarget]:
    """Resolve, import the target, and resolve again when the app brings its own Settings (the "app" layer)."""
    resolved = load_settings(cli_values)
    target = load_target(resolved.settings.target)
    if target.app is not None and target.app.settings is not None:
        resolved = load_settings(cli_values, app_settings=target.app.settings)
    return resolved, target


def fail(error: FluxLitError) -> NoReturn:
    click.echo(f"fluxlit: error: {error}", err=True)
    sys.exit(int(error.exit_code))


def fail_unexpectedly(error: Exception) -> NoReturn:
    """A bug, not a user's mistake: one line saying so, the traceback below it, and the documented exit 70."""
    click.echo(f"fluxlit: internal error: {type(error).__name__}: {error} (a bug: please report it)", err=True)
    click.echo("".join(traceback.format_exception(error)).rstrip(), err=True)
    sys.exit(int(ExitCode.INTERNAL_ERROR))
