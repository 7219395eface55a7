"""Errors a user can fix, each carrying the process exit code it maps to."""

from __future__ import annotations

from fluxlit.exit_codes import ExitCode


class FluxLitError(Exception):
    """An error with a message written for the person running FluxLit."""

    exit_code: int = ExitCode.USAGE


class ConfigError(FluxLitError):
    """A setting has a bad value; the message names the setting, the value and the fix."""

    exit_code = ExitCode.USAGE


class TargetError(FluxLitError):
    """The app target could not be imported or is not an app."""

    exit_code = ExitCode.TARGET_IMPORT_FAILED
