"""X-Forwarded-* trust, the pure rules (fluxlit.config.forwarded); what the gateway lets through is in
test_gateway_forwarded.py."""

from __future__ import annotations

import pytest

from fluxlit import Settings
from fluxlit.config.forwarded import forwarded_client, forwarded_scheme, is_trusted, parse_trusted
from fluxlit.errors import ConfigError


@pytest.mark.parametrize(
    ("peer", "xff", "trusted", "expected"),
    [
        ("10.0.0.5", "1.2.3.4", "10.0.0.0/8", "1.2.3.4"),
        ("10.0.0.5", "1.2.3.4, 10.0.0.9", "10.0.0.0/8", "1.2.3.4"),
        ("10.0.0.5", "6.6.6.6, 1.2.3.4", "10.0.0.0/8", "1.2.3.4"),  # a forged left entry is not believed
        ("8.8.8.8", "1.2.3.4", "10.0.0.0/8", "8.8.8.8"),
        ("10.0.0.5", "10.0.0.7", "10.0.0.0/8", "10.0.0.7"),
        ("::1", "2001:db8::1", "::1", "2001:db8::1"),
        # Entries that are not IP addresses are skipped, as nginx's realip does (issue 15: `<script>` was believed).
        ("10.0.0.5", "<script>", "10.0.0.0/8", "10.0.0.5"),
        ("10.0.0.5", "1.2.3.4, <script>", "10.0.0.0/8", "1.2.3.4"),
        ("10.0.0.5", "unknown, 10.0.0.9", "10.0.0.0/8", "10.0.0.9"),
        ("10.0.0.5", "1.2.3.4, evil.example, , 10.0.0.9", "10.0.0.0/8", "1.2.3.4"),
        ("10.0.0.5", "1.2.3.4:8080", "10.0.0.0/8", "10.0.0.5"),
        ("10.0.0.5", "[2001:db8::7]", "10.0.0.0/8", "[2001:db8::7]"),
        ("10.0.0.5", "1.2.3.4, " + "9" * 10_000, "10.0.0.0/8", "1.2.3.4"),
    ],
)
def test_forwarded_client_walks_right_to_left_past_trusted_hops(
    peer: str, xff: str, trusted: str, expected: str
) -> None:
    assert forwarded_client(peer, xff, parse_trusted(trusted)) == expected


@pytest.mark.parametrize(
    ("value", "websocket", "expected"),
    [("https", False, "https"), ("http, https", False, "https"), ("https", True, "wss"), ("gopher", False, None)],
)
def test_forwarded_scheme(value: str, websocket: bool, expected: str | None) -> None:
    assert forwarded_scheme(value, websocket) == expected


def test_star_trusts_every_peer_even_without_an_address() -> None:
    assert is_trusted("testclient", parse_trusted("*"))
    assert not is_trusted("testclient", parse_trusted("0.0.0.0/0"))


def test_bad_allow_list_names_the_bad_item() -> None:
    with pytest.raises(ConfigError, match="'nope' is not an IP address or CIDR"):
        Settings(forwarded_allow_ips="127.0.0.1,nope")


@pytest.mark.parametrize(
    ("proto", "websocket", "scheme"),
    [
        ("https", False, "https"),
        ("http, HTTPS", True, "wss"),
        ("http", False, "http"),
        ("https, http", True, "ws"),
        ("gopher", False, None),
        ("", False, None),
        ("https, ftp", False, None),
    ],
)
def test_the_last_forwarded_proto_hop_names_the_scheme(proto: str, websocket: bool, scheme: str | None) -> None:
    assert forwarded_scheme(proto, websocket=websocket) == scheme
