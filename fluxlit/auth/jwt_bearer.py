"""JWTBearer: a FastAPI dependency that verifies ``Authorization: Bearer <JWT>`` (HS* or RS*/PS*/ES*/EdDSA)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fluxlit.auth.challenge import invalid_token, missing_credentials
from fluxlit.auth.principal import Principal, names_at
from fluxlit.errors import ConfigError

try:
    import jwt
    from jwt.algorithms import get_default_algorithms
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("fluxlit.auth.JWTBearer needs PyJWT: pip install 'fluxlit[auth]'") from exc

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
# RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_MIN_RSA_BITS = 2048

# One scheme object for every JWTBearer: OpenAPI shows a single "bearer" security scheme.
_BEARER = HTTPBearer(auto_error=False, scheme_name="bearer", description="A JWT access token")


class JWTBearer:
    """Verify a bearer JWT and return its Principal; 401 with ``WWW-Authenticate: Bearer`` when that fails.

    ``key`` is the shared secret for HS* or the public key (PEM or a ``cryptography`` key) for asymmetric
    algorithms. ``issuer``/``audience`` are checked when given, and their claims are then required; ``exp``
    and ``sub`` are required by default. ``leeway`` seconds of clock skew are allowed on ``exp``/``nbf``/``iat``.
    """

    def __init__(
        self,
        key: Any,
        *,
        algorithms: Sequence[str] = ("HS256",),
        issuer: str | None = None,
        audience: str | Sequence[str] | None = None,
        leeway: float = 0.0,
        require: Iterable[str] = ("exp", "sub"),
        scope_claims: Iterable[str] = ("scope", "scp"),
        role_claims: Iterable[str] = ("roles",),
        realm: str = "",
    ) -> None:
        self.algorithms = _check_algorithms(algorithms)
        self.key = _check_key(key, self.algorithms)
        if not leeway >= 0:
            raise ConfigError(f"JWTBearer(leeway={leeway!r}) must be 0 or more seconds, e.g. 30")
        if isinstance(audience, str | None):
            self.audience: str | list[str] | None = audience
        else:
            self.audience = list(audience)
        self.issuer = issuer
        self.leeway = float(leeway)
        self.require = sorted({*require, *(["iss"] if issuer else []), *(["aud"] if audience else [])})
        self.scope_claims = tuple(scope_claims)
        self.role_claims = tuple(role_claims)
        self.realm = realm

    async def __call__(
        self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
    ) -> Principal:
        if credentials is None:
            raise missing_credentials(self.realm)
        return self.verify(credentials.credentials)

    def verify(self, token: str) -> Principal:
        """The Principal of a valid token; an HTTPException (401 ``invalid_token``) for any other."""
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": self.require, "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as exc:
            raise invalid_token(self.realm, describe_failure(exc)) from None
        subject = claims.get("sub", "")  # PyJWT (>= 2.10) refuses a `sub` that is not a string
        return Principal(
            subject=subject,
            scopes=names_at(claims, self.scope_claims),
            roles=names_at(claims, self.role_claims),
            claims=claims,
            source="jwt",
        )


# In order: a subclass comes before its base (InvalidSignatureError is a DecodeError).
_REFUSALS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidAudienceError, "the token is not meant for this audience"),
    (jwt.InvalidIssuerError, "the token comes from another issuer"),
    (jwt.InvalidSignatureError, "the token signature does not verify"),
    (jwt.InvalidAlgorithmError, "the token algorithm is not accepted"),
    (jwt.DecodeError, "the token is not a well-formed JWT"),
)


def describe_failure(exc: Exception) -> str:
    """Why a token was refused, in words safe to send back (never the token or the key)."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token has no '{exc.claim}' claim"
    return next((text for kind, text in _REFUSALS if isinstance(exc, kind)), "the token is not valid")


def _check_algorithms(algorithms: Sequence[str]) -> list[str]:
    if isinstance(algorithms, str):
        raise ConfigError(f"JWTBearer(algorithms={algorithms!r}) must be a list: try [{algorithms!r}]")
    known = set(get_default_algorithms()) - {"none"}
    chosen = list(dict.fromkeys(algorithms))
    unknown = [name for name in chosen if name not in known]
    if not chosen or unknown:
        raise ConfigError(
            f"JWTBearer(algorithms={list(algorithms)!r}): {unknown or 'none given'} not usable; "
            f"choose from {sorted(known)}"
        )
    if HMAC_ALGORITHMS.intersection(chosen) and set(chosen) - HMAC_ALGORITHMS:
        # One key for both families invites algorithm confusion (a public key accepted as an HMAC secret).
        raise ConfigError(
            f"JWTBearer(algorithms={chosen!r}) mixes HMAC and public-key algorithms: use one JWTBearer per family"
        )
    return chosen


def _check_key(key: Any, algorithms: list[str]) -> Any:
    if algorithms[0] in HMAC_ALGORITHMS:
        secret = key.encode("utf-8") if isinstance(key, str) else key
        if not isinstance(secret, bytes):
            raise ConfigError(f"JWTBearer key for {algorithms} must be a str or bytes secret")
        needed = max(_HMAC_MIN_BYTES[name] for name in algorithms)
        if len(secret) < needed:
            raise ConfigError(
                f"JWTBearer secret is {len(secret)} bytes; {'/'.join(algorithms)} needs at least {needed}: "
                "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        if b"-----BEGIN" in secret:
            raise ConfigError("JWTBearer secret looks like a PEM key: use an RS256/ES256 algorithm for key pairs")
        return key
    prepared = []
    for name in algorithms:
        try:
            prepared.append(jwt.get_algorithm_by_name(name).prepare_key(key))
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise ConfigError(f"JWTBearer key does not fit {name}: {exc}") from None
    for loaded in prepared:
        if hasattr(loaded, "private_bytes"):
            raise ConfigError("JWTBearer was given a private key: give the public key ('BEGIN PUBLIC KEY') instead")
        size = getattr(loaded, "key_size", None)
        if any(n.startswith(("RS", "PS")) for n in algorithms) and isinstance(size, int) and size < _MIN_RSA_BITS:
            raise ConfigError(f"JWTBearer RSA key has {size} bits; use at least {_MIN_RSA_BITS}")
    return prepared[0]
