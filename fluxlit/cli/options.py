"""The flags every settings-resolving command takes, generated from the setting specs so none can drift from them."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, TypeVar

import click

from fluxlit.config.setting_spec import SettingSpec
from fluxlit.config.settings import SETTING_SPECS, Settings

F = TypeVar("F", bound=Callable[..., Any])

# click checks numbers before our parsers see them, so `--port abc` reads like every other click error.
_CLICK_TYPES: dict[Any, Any] = {int: click.INT, float: click.FLOAT}


def setting_option(spec: SettingSpec) -> Callable[[F], F]:
    """The click option of one setting: its flag and aliases, its env var in the help; None means "not given"."""
    help_text = f"{spec.help} [env: {spec.env}]"
    assert spec.flag is not None, spec.name
    decls = (spec.flag, *spec.aliases, spec.name)
    if spec.repeatable:
        return click.option(*decls, multiple=True, metavar=spec.metavar, help=help_text + " Repeatable.")
    if "/" in spec.flag:  # a --x/--no-x switch
        return click.option(*decls, default=None, help=help_text)
    hint = typing.get_type_hints(Settings)[spec.name]
    if hint is bool:  # a lone switch (--no-pidfile): given means true, absent leaves the env and file their say
        return click.option(*decls, is_flag=True, default=None, help=help_text)
    kind = click.Choice(spec.choices) if spec.choices else _CLICK_TYPES.get(hint)
    return click.option(*decls, default=None, type=kind, metavar=spec.metavar, help=help_text)


def command_specs(command: str | None) -> list[SettingSpec]:
    """The settings with a flag on `command`: those every command takes, plus the ones only some take."""
    return [s for s in SETTING_SPECS if s.flag is not None and (not s.commands or command in s.commands)]


def settings_options_of(command: str | None) -> Callable[[F], F]:
    """The settings flags of `command`, in the settings' order, then the TARGET argument."""

    def decorate_all(func: F) -> F:
        decorators = [setting_option(spec) for spec in command_specs(command)]
        decorators.append(click.argument("target", required=False))
        for decorate in reversed(decorators):
            func = decorate(func)
        return func

    return decorate_all


def settings_options(func: F) -> F:
    """The flags shared by every command that resolves settings (`serve`, `config`), then the TARGET argument."""
    return settings_options_of(None)(func)
