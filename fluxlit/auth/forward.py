"""TrustedHeaderAuth: a FastAPI dependency for forward auth that believes identity headers only from allowed proxies."""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from fluxlit.auth.challenge import missing_credentials
from fluxlit.auth.principal import Principal, split_list_header
from fluxlit.config.forwarded import is_trusted, parse_trusted

FORWARD_AUTH_SCHEME = "ForwardAuth"


def socket_peer(scope: dict[str, Any] | Any) -> str | None:
    """The address of the TCP peer that sent this request, or None when it cannot be known.

    Behind the FluxLit gateway a trusted X-Forwarded-For replaces ``scope["client"]`` with the end client;
    the socket peer is then only known when the gateway records it as ``state["fluxlit_peer"]``.
    """
    state = scope.get("state") or {}
    if "fluxlit_peer" in state:
        peer = state["fluxlit_peer"]
        return peer if isinstance(peer, str) else None
    if "forwarded_client" in state:
        return None  # the client was rewritten from X-Forwarded-For: fail closed, never trust the end client
    client = scope.get("client")
    return str(client[0]) if client else None


class TrustedHeaderAuth:
    """Read the user a forward-auth proxy (oauth2-proxy, Authelia, Pomerium) put in a header.

    The header is believed only when the request's socket peer is in ``trusted_proxies`` (IPs or CIDRs,
    comma separated, as for FLUXLIT_FORWARDED_ALLOW_IPS); from anyone else it is ignored and the answer
    is 401. A header sent twice is refused. Groups (comma or space separated) become the Principal's roles.
    """

    def __init__(
        self,
        *,
        trusted_proxies: str = "127.0.0.1,::1",
        user_header: str = "X-Forwarded-User",
        groups_header: str | None = "X-Forwarded-Groups",
        email_header: str | None = "X-Forwarded-Email",
        realm: str = "",
    ) -> None:
        self.trusted = parse_trusted(trusted_proxies, where="TrustedHeaderAuth(trusted_proxies=...)")
        if not self.trusted:
            raise ValueError("TrustedHeaderAuth(trusted_proxies='') trusts no proxy: name its address, e.g. '10.0.0.5'")
        self.user_header = user_header
        self.groups_header = groups_header
        self.email_header = email_header
        self.realm = realm

    async def __call__(self, request: HTTPConnection) -> Principal:
        if not is_trusted(socket_peer(request.scope), self.trusted):
            raise missing_credentials(self.realm, FORWARD_AUTH_SCHEME)
        users = request.headers.getlist(self.user_header)
        user = users[0].strip() if len(users) == 1 else ""
        if not user:
            raise missing_credentials(self.realm, FORWARD_AUTH_SCHEME)
        claims: dict[str, Any] = {"sub": user}
        roles: frozenset[str] = frozenset()
        if self.groups_header:
            roles = split_list_header(",".join(request.headers.getlist(self.groups_header)))
            claims["groups"] = sorted(roles)
        if self.email_header and (email := request.headers.get(self.email_header)):
            claims["email"] = email
        return Principal(subject=user, roles=roles, claims=claims, source="forward")
