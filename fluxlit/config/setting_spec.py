"""How one setting is spelled in each source (env, flag, file key) and parsed: the schema of `Settings`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fluxlit.config.parsers import Choice


@dataclass(frozen=True)
class SettingSpec:
    """How one setting is spelled in each source and how its text is parsed."""

    name: str
    env: str
    flag: str | None
    help: str
    parse: Callable[[Any, str], Any]
    secret: bool = False
    # The command line's spelling of the value (`--port PORT`); switches (`--x/--no-x`) and choices have none.
    metavar: str | None = None
    repeatable: bool = False
    aliases: tuple[str, ...] = ()  # other spellings of the flag, e.g. the reference's (fluxlit 0.13)
    commands: tuple[str, ...] = ()  # the commands taking the flag when not all do (the pidfile: run, dev, workbench)
    file_aliases: tuple[str, ...] = ()  # other project-file keys, e.g. fluxlit 0.13's `gateway_port`

    @property
    def toml_key(self) -> str:
        return self.name

    @property
    def choices(self) -> tuple[str, ...]:
        return self.parse.choices if isinstance(self.parse, Choice) else ()


def setting_field(
    default: Any, env: str, flag: str | None, help: str, parse: Callable[[Any, str], Any], **kw: Any
) -> Any:
    meta = {"env": env, "flag": flag, "help": help, "parse": parse, **kw}
    if isinstance(default, list | dict):
        raise TypeError("settings defaults must be immutable")
    return field(default=default, metadata=meta)
