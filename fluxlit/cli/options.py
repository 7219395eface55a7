"""The flags every settings-resolving command takes, generated from the setting specs so none can drift from them."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, TypeVar

import click

from fluxlit.config.settings import SETTING_SPECS, Settings, SettingSpec

F = TypeVar("F", bound=Callable[..., Any])

# click checks numbers before our parsers see them, so `--port abc` reads like every other click error.
_CLICK_TYPES: dict[Any, Any] = {int: click.INT, float: click.FLOAT}


def setting_option(spec: SettingSpec, flag: str) -> Callable[[F], F]:
    """The click option `flag` of one setting: its env var in the help, its choices; None means "not given"."""
    help_text = f"{spec.help} [env: {spec.env}]"
    if spec.repeatable:
        return click.option(flag, spec.name, multiple=True, metavar=spec.metavar, help=help_text + " Repeatable.")
    if "/" in flag:  # a --x/--no-x switch
        return click.option(flag, spec.name, default=None, help=help_text)
    kind = click.Choice(spec.choices) if spec.choices else _CLICK_TYPES.get(typing.get_type_hints(Settings)[spec.name])
    return click.option(flag, spec.name, default=None, type=kind, metavar=spec.metavar, help=help_text)


def settings_options(func: F) -> F:
    """The flags shared by every command that resolves settings, in the settings' order, then the TARGET argument."""
    decorators = [setting_option(spec, spec.flag) for spec in SETTING_SPECS if spec.flag is not None]
    decorators.append(click.argument("target", required=False))
    for decorate in reversed(decorators):
        func = decorate(func)
    return func
