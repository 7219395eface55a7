"""RequireScopes and RequireRoles: FastAPI dependencies that refuse (403) a Principal lacking what a route needs."""

# No `from __future__ import annotations` here: FastAPI resolves postponed annotation strings in module
# globals, where the closures' `auth` is not; evaluated now, `Annotated[..., Depends(auth)]` holds the object.
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends

from fluxlit.auth.challenge import forbidden, insufficient_scope
from fluxlit.auth.principal import Principal

Authenticator = Callable[..., Awaitable[Principal]]
PrincipalDependency = Callable[..., Awaitable[Principal]]


def RequireScopes(auth: Authenticator, *scopes: str) -> PrincipalDependency:
    """A dependency returning the Principal of ``auth`` when it holds every one of ``scopes``, else 403."""
    wanted = frozenset(_names("RequireScopes", scopes))
    realm = str(getattr(auth, "realm", ""))

    async def require_scopes(principal: Annotated[Principal, Depends(auth)]) -> Principal:
        if not principal.has_scopes(wanted):
            missing = " ".join(sorted(wanted - principal.scopes))
            raise insufficient_scope(realm, wanted, f"the token lacks the scope(s): {missing}")
        return principal

    return require_scopes


def RequireRoles(auth: Authenticator, *roles: str, require_all: bool = False) -> PrincipalDependency:
    """A dependency returning the Principal of ``auth`` if it has any of ``roles`` (all: require_all), else 403."""
    wanted = frozenset(_names("RequireRoles", roles))

    async def require_roles(principal: Annotated[Principal, Depends(auth)]) -> Principal:
        allowed = wanted <= principal.roles if require_all else principal.has_any_role(wanted)
        if not allowed:
            needed = " and ".join(sorted(wanted)) if require_all else " or ".join(sorted(wanted))
            raise forbidden(f"this needs the role {needed}")
        return principal

    return require_roles


def _names(kind: str, names: tuple[str, ...]) -> tuple[str, ...]:
    if not names or any(not isinstance(n, str) or not n.strip() or " " in n for n in names):
        raise ValueError(f"{kind}(auth, {', '.join(map(repr, names))}) needs one or more names without spaces")
    return names
