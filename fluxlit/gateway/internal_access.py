"""Pure rules for who may read the gateway's internal endpoints (the metrics scrape), and on which port."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from fluxlit.config.forwarded import TRUST_ALL, Network, is_trusted

# With the IPv4-mapped form: an IPv4 client of a dual-stack [::] bind shows up as ::ffff:127.0.0.1.
LOOPBACK: tuple[Network, ...] = tuple(
    ipaddress.ip_network(net) for net in ("127.0.0.0/8", "::1/128", "::ffff:127.0.0.0/104")
)


@dataclass(frozen=True)
class InternalAccess:
    """Internal endpoints answer only clients in `allow`; with a `port`, only on that port, where nothing else
    answers. Everyone else gets 404, as if there were no such endpoint.

    The client is the TCP peer, or for a request a trusted proxy relayed (it named the client in
    X-Forwarded-For) the client it named: a proxy on loopback must not hand the scrape to the internet. When
    every peer is trusted (`--forwarded-allow-ips '*'`) a named client is whatever the client itself wrote,
    so relayed requests are then refused (`believe_forwarded` False) unless `allow` is everyone.
    """

    allow: tuple[Network, ...] = LOOPBACK
    port: int | None = None
    believe_forwarded: bool = True

    def admits(self, peer: str | None, forwarded_client: str | None) -> bool:
        if self.allow is TRUST_ALL:
            return True
        if forwarded_client is not None:
            return self.believe_forwarded and is_trusted(forwarded_client, self.allow)
        return is_trusted(peer, self.allow)

    def on_dedicated_port(self, server: tuple[str, int | None] | None) -> bool:
        """True when the request arrived on the internal port (`server` is the ASGI scope's local address)."""
        return self.port is not None and server is not None and server[1] == self.port


def internal_access_for(
    trusted_proxies: tuple[Network, ...], *, allow: tuple[Network, ...] | None, port: int | None
) -> InternalAccess:
    """The rule for one run: an explicit `allow` list, else loopback and the trusted proxies (loopback alone
    when every peer is trusted), else, on a dedicated port, anyone who can reach that port."""
    believe = trusted_proxies is not TRUST_ALL
    if allow is not None:
        return InternalAccess(allow, port, believe)
    if port is not None:
        return InternalAccess(TRUST_ALL, port, believe)
    return InternalAccess(LOOPBACK + trusted_proxies if believe else LOOPBACK, None, believe)
