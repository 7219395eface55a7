"""What `fluxlit doctor` checks produce (Check) and what they read (DoctorContext), shared by every check module."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from fluxlit.config.settings import Settings
from fluxlit.config.sources import ResolvedSettings, load_settings
from fluxlit.errors import ConfigError, TargetError
from fluxlit.targets import LoadedTarget, load_target


class Status(str, Enum):
    """A check's verdict; FAIL makes `fluxlit doctor` exit 1, WARN too with --strict."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One verdict: what was checked, what was found, and what to do about it (empty when nothing)."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "detail": self.detail, "fix": self.fix}


def passed(name: str, detail: str) -> Check:
    return Check(name, Status.PASS, detail)


def warned(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.WARN, detail, fix)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.FAIL, detail, fix)


@dataclass
class DoctorContext:
    """Inputs of one doctor run, with the settings and the target loaded once and shared by the checks."""

    target_arg: str | None = None
    url: str | None = None
    lb_idle_timeout: float | None = None  # seconds a load balancer in front lets a connection idle
    cwd: Path = field(default_factory=Path.cwd)
    env: Mapping[str, str] | None = None
    _resolved: ResolvedSettings | ConfigError | None = None
    _target: LoadedTarget | TargetError | None = None
    cache: dict[str, object] = field(default_factory=dict)

    @property
    def resolved(self) -> ResolvedSettings | ConfigError:
        """The settings `fluxlit serve` would use here, or why they are invalid."""
        if self._resolved is None:
            cli = {"target": self.target_arg} if self.target_arg else {}
            try:
                self._resolved = load_settings(cli, env=self.env, project_dir=self.cwd)
            except ConfigError as error:
                self._resolved = error
        return self._resolved

    @property
    def settings(self) -> Settings | None:
        resolved = self.resolved
        return resolved.settings if isinstance(resolved, ResolvedSettings) else None

    @property
    def target_spec(self) -> str:
        settings = self.settings
        if settings is not None:
            return settings.target
        env = self.env if self.env is not None else os.environ
        return self.target_arg or env.get("FLUXLIT_APP") or Settings().target

    @property
    def target(self) -> LoadedTarget | TargetError:
        """The imported app, or the TargetError `fluxlit serve` would exit with."""
        if self._target is None:
            try:
                self._target = load_target(self.target_spec, cwd=self.cwd)
            except TargetError as error:
                self._target = error
        return self._target


CheckFunction = Callable[[DoctorContext], Check]


def check_name(function: CheckFunction) -> str:
    """The name a check function reports under: its own name without the `check_` prefix."""
    return str(getattr(function, "__name__", repr(function))).removeprefix("check_")


def not_checked(function: CheckFunction, why: str) -> Check:
    """A check that could not run because an earlier one failed; a warning, so it is never silently green."""
    return warned(check_name(function), f"not checked: {why}", "fix the failure above first")
