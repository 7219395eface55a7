"""The curated advisories of our own dependencies (floor_advisories.json), asked about one installed version.

pip-audit asks a service about each installed version; for versions that are not the latest release, no
service reachable from some machines answers (a PyPI mirror without per-version JSON, no route to OSV). The
floors of pyproject.toml are exactly such versions, so they are also checked against this table, which is
reviewed by hand: a dependency missing from it counts as not audited, never as clean.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

TABLE = Path(__file__).resolve().parent / "floor_advisories.json"


@dataclass(frozen=True)
class Advisories:
    reviewed: date
    by_package: dict[str, list[dict[str, Any]]]

    def covers(self, name: str) -> bool:
        return canonicalize_name(name) in self.by_package

    def affecting(self, name: str, version: str) -> list[str]:
        """IDs (with aliases) of the advisories whose affected range holds `version`; [] when none or unknown."""
        found = []
        for advisory in self.by_package.get(canonicalize_name(name), []):
            if Version(version) in SpecifierSet(str(advisory["affected"])):
                found.append(" / ".join([advisory["id"], *advisory.get("aliases", [])]))
        return found


def load(path: Path = TABLE) -> Advisories:
    data = json.loads(path.read_text(encoding="utf-8"))
    packages: dict[str, list[dict[str, Any]]] = {
        str(canonicalize_name(name)): list(entries) for name, entries in data["packages"].items()
    }
    for name, entries in packages.items():
        for entry in entries:
            SpecifierSet(entry["affected"])  # a typo in a range must fail loudly, not match nothing
            if not entry.get("id"):
                raise ValueError(f"{path}: an advisory of {name} has no id")
    return Advisories(reviewed=date.fromisoformat(data["reviewed"]), by_package=packages)
