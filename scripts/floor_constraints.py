"""Print pip constraints that pin every dependency floor of pyproject.toml (runtime and the given extras).

Usage: floor_constraints.py [EXTRA ...] > floors.txt

`pip install -c floors.txt -e ".[auth]"` then installs the lowest versions the floors allow for our own
dependencies, and the newest versions those allow for everything beneath them: what a user gets who already
has the floor versions installed. A floor is the version of a `>=` (or `==`, `~=`) clause; a requirement whose
environment marker does not hold here (`tomli; python_version < '3.11'` on 3.11) is left out, and so is one
with no floor, which is printed to stderr because an open floor cannot be audited.
"""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def floor_of(requirement: Requirement) -> str | None:
    """The lowest version the requirement allows, when one clause names it."""
    for clause in requirement.specifier:
        if clause.operator in (">=", "==", "~=", "==="):
            return clause.version
    return None


def floor_constraints(pyproject: dict[str, object], extras: list[str]) -> tuple[list[str], list[str]]:
    """(`name==floor` lines, names of requirements without a floor) for the runtime deps and `extras`."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    lines = list(project["dependencies"])
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            known = sorted(optional)
            raise SystemExit(f"floor_constraints: pyproject.toml has no extra {extra!r}: choose from {known}")
        lines += optional[extra]
    pins: dict[str, str] = {}
    open_floors: list[str] = []
    for line in lines:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        floor = floor_of(requirement)
        if floor is None:
            open_floors.append(requirement.name)
        else:
            pins[requirement.name.lower()] = floor
    return [f"{name}=={version}" for name, version in sorted(pins.items())], open_floors


def main(argv: list[str]) -> int:
    pins, open_floors = floor_constraints(tomllib.loads(PYPROJECT.read_text()), argv[1:])
    for name in open_floors:
        print(f"floor_constraints: {name} has no floor (>=), so its lowest version cannot be audited", file=sys.stderr)
    print("\n".join(pins))
    return 1 if open_floors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
