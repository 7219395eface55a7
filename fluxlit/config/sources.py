"""Builds `Settings` from CLI flags, FLUXLIT_* env vars, fluxlit.toml and app code, remembering each value's source."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fluxlit.config.settings import DEFAULTS, SETTING_SPECS, SPECS_BY_NAME, Settings
from fluxlit.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

PROJECT_FILE = "fluxlit.toml"


@dataclass(frozen=True)
class ResolvedSettings:
    """The settings of a run plus, for every field, where its value came from."""

    settings: Settings
    sources: Mapping[str, str]
    project_file: str | None

    def report(self) -> list[dict[str, Any]]:
        shown = self.settings.redacted()
        return [
            {
                "name": spec.name,
                "value": shown[spec.name],
                "source": self.sources[spec.name],
                "env": spec.env,
                "flag": spec.flag,
                "toml_key": spec.toml_key,
            }
            for spec in SETTING_SPECS
        ]


def find_project_file(directory: Path) -> tuple[Path | None, dict[str, Any]]:
    """fluxlit.toml wins over [tool.fluxlit] in pyproject.toml; neither is fine."""
    candidate = directory / PROJECT_FILE
    if candidate.is_file():
        return candidate, _read_toml(candidate)
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        table = _read_toml(pyproject).get("tool", {}).get("fluxlit")
        if isinstance(table, dict):
            return pyproject, table
    return None, {}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            document: dict[str, Any] = tomllib.load(handle)
            return document
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}): fix the file or remove it") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror})") from None


def load_settings(
    cli: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    project_dir: Path | None = None,
    app_settings: Settings | None = None,
) -> ResolvedSettings:
    """Merge the sources, highest first: CLI, env, project file, app code, defaults.

    CLI values of None mean "flag not given". Every value is parsed by its setting's parser, so a bad value
    fails here with the spelling the user wrote (the flag, the env var or the file key).
    """
    environ = os.environ if env is None else env
    project_path, table = find_project_file(project_dir or Path.cwd())
    table = _canonical_keys(project_path, table)
    unknown = sorted(set(table) - set(SPECS_BY_NAME))
    if unknown:
        raise ConfigError(
            f"{project_path}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(SPECS_BY_NAME))}"
        )
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in SETTING_SPECS:
        cli_value = (cli or {}).get(spec.name)
        if cli_value is not None and cli_value != ():
            values[spec.name] = spec.parse(cli_value, spec.flag or spec.name)
            sources[spec.name] = "cli"
        elif spec.env in environ:
            values[spec.name] = spec.parse(environ[spec.env], spec.env)
            sources[spec.name] = "env"
        elif spec.name in table:
            values[spec.name] = spec.parse(table[spec.name], f"{project_path}: {spec.toml_key}")
            sources[spec.name] = f"file:{project_path}"
        elif app_settings is not None and getattr(app_settings, spec.name) != getattr(DEFAULTS, spec.name):
            values[spec.name] = getattr(app_settings, spec.name)
            sources[spec.name] = "app"
        else:
            values[spec.name] = getattr(DEFAULTS, spec.name)
            sources[spec.name] = "default"
    if values["debug"] and sources["log_level"] == "default":
        values["log_level"], sources["log_level"] = "debug", sources["debug"]
    settings = Settings(**values)
    return ResolvedSettings(settings, sources, str(project_path) if project_path else None)


def _canonical_keys(project_path: Path | None, table: dict[str, Any]) -> dict[str, Any]:
    """fluxlit 0.13's project-file keys (`gateway_port`) under our names, so its files load unchanged."""
    canonical = dict(table)
    for spec in SETTING_SPECS:
        for alias in spec.file_aliases:
            if alias not in canonical:
                continue
            if spec.name in canonical:
                raise ConfigError(f"{project_path}: {alias} and {spec.name} are the same setting: keep one")
            canonical[spec.name] = canonical.pop(alias)
    return canonical


def replace(settings: Settings, **changes: Any) -> Settings:
    """A copy with some fields changed, checked like any other settings."""
    return dataclasses.replace(settings, **changes)
