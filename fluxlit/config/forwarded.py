"""Pure rules for X-Forwarded-* trust: which peers may speak for the client, and who the client then is."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from fluxlit.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDED_HEADERS = frozenset(
    {
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"forwarded",
    }
)


# '*' trusts every peer, including ones without an IP address (unix sockets, in-process test clients).
TRUST_ALL: tuple[Network, ...] = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def parse_trusted(text: str, *, where: str = "FLUXLIT_FORWARDED_ALLOW_IPS") -> tuple[Network, ...]:
    """Comma-separated IPs or CIDRs; '*' trusts every peer (only behind a proxy that owns the network edge)."""
    networks: list[Network] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item == "*":
            return TRUST_ALL
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"{where}={text!r}: {item!r} is not an IP address or CIDR; use e.g. '127.0.0.1,10.0.0.0/8'"
            ) from None
    return tuple(networks)


def is_trusted(host: str | None, networks: Iterable[Network]) -> bool:
    if networks is TRUST_ALL:
        return True
    if not host:
        return False
    address = _address(host)
    return address is not None and any(address in network for network in networks)


@functools.lru_cache(maxsize=4096)
def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parsed once per peer address: the gateway asks for every request."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None  # unix socket peers and test clients have no IP: never trusted by address


def forwarded_client(peer: str, x_forwarded_for: str, networks: Iterable[Network]) -> str:
    """The first untrusted address walking the chain right to left (the last hop a trusted proxy saw).

    Entries that are not IP addresses (`unknown`, `<script>`, a host name) are skipped, as nginx's realip
    module does: the client address the API and the logs see is always an address or the peer itself.
    """
    nets = tuple(networks)
    chain = x_forwarded_for.split(",")
    current = peer
    while chain and is_trusted(current, nets):
        hop = chain.pop().strip()
        # Checked lazily, right to left, and never cached when longer than any address: the left entries
        # are whatever the client wrote.
        if len(hop) <= _MAX_ADDRESS_CHARS and _address(hop) is not None:
            current = hop
    return current


# The longest textual client address: a bracketed IPv6 ending in an IPv4 (a zoned link-local one is no client).
_MAX_ADDRESS_CHARS = len("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]")


def forwarded_scheme(value: str, websocket: bool) -> str | None:
    """The scheme the client used, from the last X-Forwarded-Proto hop; None when it is not http(s)."""
    proto = value.split(",")[-1].strip().lower()
    if proto in ("https", "wss"):
        return "wss" if websocket else "https"
    if proto in ("http", "ws"):
        return "ws" if websocket else "http"
    return None
