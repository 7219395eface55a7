"""Who a request acts for: the Principal every authenticator returns, and the pure rules for reading claims."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: subject, granted scopes and roles, and the verified claims they came from."""

    subject: str
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict, hash=False)
    source: str = ""

    def has_scopes(self, required: Iterable[str]) -> bool:
        return set(required) <= self.scopes

    def has_any_role(self, wanted: Iterable[str]) -> bool:
        return not self.roles.isdisjoint(wanted)


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted claim path (``realm_access.roles``), or None when any step is missing."""
    if path in claims:
        return claims[path]  # names with dots (namespaced URLs) win over a nested lookup
    current: Any = claims
    for step in path.split("."):
        if not isinstance(current, Mapping) or step not in current:
            return None
        current = current[step]
    return current


def names_from(value: Any) -> frozenset[str]:
    """A set of names from a space-delimited string (RFC 8693 ``scope``) or a list of strings; else empty."""
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list | tuple):
        return frozenset(item for item in value if isinstance(item, str) and item)
    return frozenset()


def names_at(claims: Mapping[str, Any], paths: Iterable[str]) -> frozenset[str]:
    """The union of the names found at each claim path (e.g. both ``scope`` and ``scp``)."""
    found: frozenset[str] = frozenset()
    for path in paths:
        found |= names_from(claim_at(claims, path))
    return found


def split_list_header(value: str) -> frozenset[str]:
    """Comma- or space-separated names from a header such as ``X-Forwarded-Groups: admin, staff``."""
    return frozenset(part for part in value.replace(",", " ").split() if part)
