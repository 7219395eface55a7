"""The 401 and 403 answers of RFC 6750 section 3: status, WWW-Authenticate challenge and a short detail."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import HTTPException


def _quoted(value: str) -> str:
    # A challenge parameter is a quoted-string: drop what would end it or break the header line.
    return "".join(ch for ch in value if ch not in '"\\\r\n' and (ch == " " or ch.isprintable()))


def bearer_challenge(realm: str, error: str | None = None, description: str | None = None, scope: str = "") -> str:
    params = [f'realm="{_quoted(realm)}"'] if realm else []
    if error:
        params.append(f'error="{_quoted(error)}"')
    if description:
        params.append(f'error_description="{_quoted(description)}"')
    if scope:
        params.append(f'scope="{_quoted(scope)}"')
    return "Bearer" + (" " + ", ".join(params) if params else "")


def missing_credentials(realm: str, scheme: str = "Bearer") -> HTTPException:
    """401 without an error code: the client sent no credentials at all (RFC 6750 section 3.1)."""
    challenge = bearer_challenge(realm) if scheme == "Bearer" else scheme
    return HTTPException(401, detail="Not authenticated", headers={"WWW-Authenticate": challenge})


def invalid_token(realm: str, description: str) -> HTTPException:
    """401 ``invalid_token``: malformed, badly signed, expired, or for another issuer or audience."""
    challenge = bearer_challenge(realm, "invalid_token", description)
    return HTTPException(401, detail=f"Invalid token: {description}", headers={"WWW-Authenticate": challenge})


def insufficient_scope(realm: str, scopes: Iterable[str], description: str) -> HTTPException:
    """403 ``insufficient_scope``: a valid token that does not grant what the route needs."""
    wanted = " ".join(sorted(scopes))
    challenge = bearer_challenge(realm, "insufficient_scope", description, wanted)
    return HTTPException(403, detail=description, headers={"WWW-Authenticate": challenge})


def forbidden(description: str) -> HTTPException:
    """403 without a challenge: the caller is known but lacks a role (re-authenticating would not help)."""
    return HTTPException(403, detail=description)
