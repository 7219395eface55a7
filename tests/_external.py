"""Tests that need a program from outside the Python environment (nginx, Caddy, Chromium, ...).

A test says what it needs with `@pytest.mark.external("nginx")`. Without the program it is skipped, and the reason
names the Debian package that provides it; with FLUXLIT_REQUIRE_TOOLS=1 (set by `.ci/run`, which installs them all)
it fails instead, so CI can never go green by skipping. These tests are left out of every coverage gate
(`-m "not external"` in the Makefile): a gate must pass on a machine with Python and nothing else.

Every run ends with one line that counts the skip reasons; FLUXLIT_SKIP_LOG names a file that collects them across
the several pytest runs of `make test` (scripts/skip_summary.py prints the total).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("FLUXLIT_E2E_CHROMIUM", "/usr/bin/chromium")


@dataclass(frozen=True)
class Tool:
    """A program a test needs, how to tell it is here, and how to get it."""

    name: str
    install: str
    present: Callable[[], bool]


def _on_path(program: str) -> Callable[[], bool]:
    return lambda: shutil.which(program) is not None


@functools.cache
def _pid_namespace_possible() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = ["unshare", "--pid", "--fork", "--mount-proc", "true"]
    return subprocess.run(probe, capture_output=True, check=False, timeout=30).returncode == 0


TOOLS = {
    tool.name: tool
    for tool in (
        Tool("nginx", "Debian package nginx: apt-get install nginx", _on_path("nginx")),
        Tool("caddy", "Debian package caddy: apt-get install caddy", _on_path("caddy")),
        Tool("curl", "Debian package curl: apt-get install curl", _on_path("curl")),
        Tool("chromium", f"Debian package chromium at {CHROMIUM}: apt-get install chromium", Path(CHROMIUM).exists),
        Tool("systemd-analyze", "Debian package systemd: apt-get install systemd", _on_path("systemd-analyze")),
        Tool(
            "pid-namespace",
            "root and unshare from Debian package util-linux (CI runs as root)",
            _pid_namespace_possible,
        ),
    )
}


def missing_reason(names: tuple[str, ...]) -> str | None:
    """Why a test that needs `names` cannot run here, or None when everything is present."""
    for name in names:
        tool = TOOLS.get(name)
        if tool is None:
            raise pytest.UsageError(f"@pytest.mark.external({name!r}): unknown tool; known: {', '.join(TOOLS)}")
        if not tool.present():
            return f"needs {tool.name} ({tool.install})"
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "external(*tools): needs programs from outside the Python environment; skipped without them "
        "(failed with FLUXLIT_REQUIRE_TOOLS=1) and never under a coverage gate",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    names = tuple(name for marker in item.iter_markers("external") for name in marker.args)
    if not names:
        return
    reason = missing_reason(names)
    if reason is None:
        return
    if os.environ.get("FLUXLIT_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{reason}; FLUXLIT_REQUIRE_TOOLS=1 says this machine must have it", pytrace=False)
    pytest.skip(reason)


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return str(reason).removeprefix("Skipped: ")


def summary_line(reasons: Counter[str]) -> str:
    """`skipped: none`, or the count and each distinct reason, most frequent first, on one line."""
    if not reasons:
        return "skipped: none"
    parts = [f"{count} x {reason}" for reason, count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]
    return f"skipped {sum(reasons.values())}: " + "; ".join(parts)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if hasattr(terminalreporter.config, "workerinput"):
        return  # an xdist worker: the controller reports for the whole run
    reasons = Counter(_skip_reason(report) for report in terminalreporter.stats.get("skipped", ()))
    terminalreporter.write_line(summary_line(reasons))
    log = os.environ.get("FLUXLIT_SKIP_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps(dict(reasons)) + "\n")
