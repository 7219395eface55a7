"""Properties of the pure rules, checked with hypothesis over generated input rather than a few hand-picked cases.

Header filtering and X-Forwarded-* (proxy.headers), forwarded trust (fluxlit.config.forwarded), mount and prefix
handling (fluxlit.config.paths), settings parsers, redaction and request ids.
"""

from __future__ import annotations

import ipaddress
import re
import string
from typing import Any
from urllib.parse import quote, unquote, urlencode

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="property tests need hypothesis (a dev dependency)")
from fluxlit_proxy.headers import (  # noqa: E402
    HOP_BY_HOP,
    SUPPLIED_BY_SERVER,
    ClientHop,
    end_to_end,
    forward_request_headers,
    framing_headers,
    request_body_framing,
    request_target,
    response_headers_for_client,
)
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fluxlit.config.forwarded import (  # noqa: E402
    FORWARDED_HEADERS,
    TRUST_ALL,
    forwarded_client,
    forwarded_scheme,
    is_trusted,
    parse_trusted,
)
from fluxlit.config.parsers import parse_bool, parse_port  # noqa: E402
from fluxlit.config.paths import is_under, normalize_mount, strip_mount  # noqa: E402
from fluxlit.config.settings import SETTING_SPECS  # noqa: E402
from fluxlit.errors import ConfigError  # noqa: E402
from fluxlit.gateway.request_id import is_valid_request_id, pick_request_id  # noqa: E402
from fluxlit.observability.redaction import (  # noqa: E402
    REDACTED,
    SENSITIVE_HEADERS,
    SENSITIVE_NAME_PARTS,
    SENSITIVE_QUERY_KEYS,
    is_sensitive_query_key,
    redact_headers,
    redact_query,
)

# No example database: nothing is written into the repository, and a run depends only on the code.
FAST = settings(deadline=None, max_examples=300, database=None)

# --- generators ---

TCHAR = string.ascii_lowercase + string.digits + "!#$%&'*+-.^_`|~"
SPECIAL_NAMES = sorted(
    HOP_BY_HOP | SUPPLIED_BY_SERVER | FORWARDED_HEADERS | {b"host", b"content-length", b"cookie", b"x-request-id"}
)
plain_names = st.text(TCHAR, min_size=1, max_size=12).map(str.encode)
header_names = st.one_of(st.sampled_from(SPECIAL_NAMES), plain_names)
header_values = st.binary(max_size=24).map(lambda b: bytes(c for c in b if c in range(0x20, 0x7F) or c == 0x09))


@st.composite
def header_lists(draw: Any) -> list[tuple[bytes, bytes]]:
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=12))
    if draw(st.booleans()):
        named = draw(st.lists(header_names, min_size=1, max_size=3))
        headers.insert(draw(st.integers(0, len(headers))), (b"connection", b", ".join(named)))
    return headers


hops = st.builds(
    ClientHop,
    client_host=st.one_of(st.none(), st.ip_addresses().map(str)),
    scheme=st.sampled_from(["http", "https", "ws", "wss"]),
    server_port=st.one_of(st.none(), st.integers(1, 65535)),
    root_path=st.sampled_from(["", "/apps/demo", "/x"]),
)
segments = st.text(string.ascii_letters + string.digits + "-._~", min_size=1, max_size=6)
mounts = st.lists(segments.filter(lambda s: s not in (".", "..")), max_size=3).map(
    lambda parts: "/" + "/".join(parts) if parts else ""
)
rel_paths = st.lists(st.text(min_size=0, max_size=6).filter(lambda s: "/" not in s), max_size=4).map(
    lambda parts: "".join("/" + p for p in parts)
)


def names_of(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [name.lower() for name, _ in headers]


def connection_named(headers: list[tuple[bytes, bytes]]) -> set[bytes]:
    return {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
        if token.strip()
    }


# --- header filtering ---


@FAST
@given(header_lists())
def test_end_to_end_drops_hop_by_hop_and_connection_named_headers_keeping_order(
    headers: list[tuple[bytes, bytes]],
) -> None:
    dropped = HOP_BY_HOP | connection_named(headers)
    assert end_to_end(headers) == [(n, v) for n, v in headers if n.lower() not in dropped]


@FAST
@given(header_lists())
def test_end_to_end_is_idempotent(headers: list[tuple[bytes, bytes]]) -> None:
    once = end_to_end(headers)
    assert end_to_end(once) == once


REPLACED = {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port", b"x-forwarded-prefix"}


@FAST
@given(header_lists(), hops)
def test_forwarded_request_never_carries_hop_by_hop_framing_or_connection_named_headers(
    headers: list[tuple[bytes, bytes]], hop: ClientHop
) -> None:
    out = names_of(forward_request_headers(headers, hop))
    forbidden = (HOP_BY_HOP | connection_named(headers) | {b"content-length"}) - REPLACED
    assert not forbidden.intersection(out)


@FAST
@given(header_lists(), hops)
def test_other_request_headers_pass_byte_exact_in_order(headers: list[tuple[bytes, bytes]], hop: ClientHop) -> None:
    dropped = HOP_BY_HOP | connection_named(headers) | REPLACED | {b"content-length"}
    passed = [(n, v) for n, v in forward_request_headers(headers, hop) if n.lower() not in REPLACED]
    assert passed == [(n, v) for n, v in headers if n.lower() not in dropped]


@FAST
@given(header_lists(), hops)
def test_x_forwarded_headers_describe_this_hop_whatever_the_client_sent(
    headers: list[tuple[bytes, bytes]], hop: ClientHop
) -> None:
    out = forward_request_headers(headers, hop)
    values = {name: [v for n, v in out if n == name] for name in REPLACED}
    assert values[b"x-forwarded-proto"] == [b"https" if hop.scheme in ("https", "wss") else b"http"]
    assert values[b"x-forwarded-port"] == ([str(hop.server_port).encode()] if hop.server_port is not None else [])
    assert values[b"x-forwarded-prefix"] == ([hop.root_path.encode()] if hop.root_path else [])
    hosts = [v for n, v in headers if n.lower() == b"host"]
    expected_host = hosts[:1]
    if b"host" in connection_named(headers):  # a Host the client declared hop-by-hop may be left out
        assert values[b"x-forwarded-host"] in (expected_host, [])
    else:
        assert values[b"x-forwarded-host"] == expected_host


@FAST
@given(header_lists(), hops)
def test_x_forwarded_for_appends_this_hops_client_to_the_inbound_chain(
    headers: list[tuple[bytes, bytes]], hop: ClientHop
) -> None:
    out = [v for n, v in forward_request_headers(headers, hop) if n == b"x-forwarded-for"]
    inbound = [v.strip() for n, v in headers if n.lower() == b"x-forwarded-for" and v.strip()]
    expected = inbound + ([hop.client_host.encode()] if hop.client_host else [])
    assert out == ([b", ".join(expected)] if expected else [])


@FAST
@given(header_lists())
def test_responses_reach_the_client_without_hop_by_hop_date_server_or_conflicting_length(
    headers: list[tuple[bytes, bytes]],
) -> None:
    out = names_of(response_headers_for_client(headers))
    assert not (HOP_BY_HOP | SUPPLIED_BY_SERVER | connection_named(headers)).intersection(out)
    if b"transfer-encoding" in names_of(headers):
        assert b"content-length" not in out


@FAST
@given(st.sampled_from(["1.0", "1.1", "2"]), header_lists())
def test_body_framing_rebuilds_exactly_one_framing_header_or_none(
    version: str, headers: list[tuple[bytes, bytes]]
) -> None:
    framing = request_body_framing(version, headers)
    names = names_of(framing_headers(framing))
    assert len(names) <= 1
    assert set(names) <= {b"content-length", b"transfer-encoding"}
    if framing.kind == "length":
        assert framing.length is not None
        assert framing.length >= 0


@FAST
@given(mounts, st.binary(min_size=0, max_size=40), st.binary(max_size=20))
def test_upstream_target_starts_with_the_prefix_and_holds_only_visible_ascii(
    prefix: str, raw: bytes, query: bytes
) -> None:
    target = request_target(prefix, b"/" + raw, "", query)
    assert target.startswith(prefix.encode() + b"/")
    assert all(0x21 <= byte <= 0x7E for byte in target)


@FAST
@given(mounts, st.text(string.ascii_letters + string.digits + "/%._~-!$&'()*+,;=:@", max_size=40))
def test_upstream_target_keeps_a_visible_raw_path_byte_exact(prefix: str, raw: str) -> None:
    assert request_target(prefix, b"/" + raw.encode(), "", b"") == (prefix + "/" + raw).encode()


# --- X-Forwarded-For trust ---

addresses = st.ip_addresses().map(str)


@st.composite
def networks(draw: Any) -> str:
    address = draw(st.ip_addresses())
    bits = draw(st.integers(0, address.max_prefixlen))
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


@FAST
@given(st.lists(networks(), min_size=1, max_size=4), addresses)
def test_an_address_is_trusted_exactly_when_a_listed_network_contains_it(nets: list[str], address: str) -> None:
    parsed = parse_trusted(",".join(nets))
    expected = any(ipaddress.ip_address(address) in ipaddress.ip_network(n) for n in nets)
    assert is_trusted(address, parsed) is expected


@FAST
@given(st.text(max_size=20))
def test_a_peer_without_an_ip_address_is_never_trusted_by_a_list(peer: str) -> None:
    try:
        ipaddress.ip_address(peer.strip("[]"))
    except ValueError:
        assert not is_trusted(peer, parse_trusted("0.0.0.0/0,::/0"))
    assert is_trusted(peer, TRUST_ALL)


@FAST
@given(st.lists(networks(), max_size=3), addresses, st.lists(addresses, max_size=5))
def test_forwarded_client_is_the_rightmost_untrusted_hop(nets: list[str], peer: str, chain: list[str]) -> None:
    trusted = parse_trusted(",".join(nets))
    hops_seen = [peer]
    remaining = list(chain)
    while remaining and is_trusted(hops_seen[-1], trusted):
        hops_seen.append(remaining.pop())
    assert forwarded_client(peer, ", ".join(chain), trusted) == hops_seen[-1]


@FAST
@given(addresses, st.text(max_size=40))
def test_an_untrusted_peer_is_its_own_client_whatever_it_claims(peer: str, claimed: str) -> None:
    assert forwarded_client(peer, claimed, ()) == peer


@FAST
@given(st.text(max_size=30), st.booleans())
def test_forwarded_scheme_is_one_of_the_four_or_none(value: str, websocket: bool) -> None:
    scheme = forwarded_scheme(value, websocket)
    assert scheme in (("ws", "wss", None) if websocket else ("http", "https", None))


@FAST
@given(st.text(max_size=40))
def test_trusted_list_parsing_accepts_or_names_the_setting(text: str) -> None:
    try:
        parse_trusted(text)
    except ConfigError as exc:
        message = str(exc)
    else:
        return
    assert "FLUXLIT_FORWARDED_ALLOW_IPS" in message


# --- mount and prefix ---


@FAST
@given(st.text(max_size=30))
def test_normalized_mount_is_canonical_and_idempotent(value: str) -> None:
    assume(value.strip().strip("/") or value.strip() in ("", "/"))  # only-slashes: see the xfail below
    try:
        mount = normalize_mount(value, name="root_path", allow_empty=True)
    except ConfigError:
        return
    assert mount == "" or (mount.startswith("/") and not mount.endswith("/") and "//" not in mount)
    assert normalize_mount(mount, name="root_path", allow_empty=True) == mount


@pytest.mark.parametrize("value", ["//", "///", " // "])
def test_a_mount_of_only_slashes_is_the_root(value: str) -> None:
    assert normalize_mount(value, name="root_path", allow_empty=True) == ""
    with pytest.raises(ConfigError):
        normalize_mount(value, name="api_prefix", allow_empty=False)


@FAST
@given(mounts, rel_paths)
def test_stripping_the_mount_leaves_the_rest_with_raw_bytes_that_decode_to_it(mount: str, rel: str) -> None:
    path = mount + rel
    assume(path)  # request paths are never empty
    stripped = strip_mount(path, quote(path).encode("ascii"), mount)
    assert stripped.path == (rel or "/")
    assert unquote(stripped.raw_path.decode("ascii")) == stripped.path


@FAST
@given(mounts, rel_paths)
def test_a_mount_spelled_with_escapes_is_stripped_the_same(mount: str, rel: str) -> None:
    assume(mount)
    path = mount + rel
    # Every byte but the separators escaped, even unreserved ones: the segments stay the same.
    escaped = "/".join("".join(f"%{byte:02X}" for byte in part.encode()) for part in path.split("/"))
    plain = strip_mount(path, quote(path).encode("ascii"), mount)
    stripped = strip_mount(path, escaped.encode("ascii"), mount)
    assert (stripped.path, stripped.route) == (plain.path, plain.route)
    assert unquote(stripped.raw_path.decode("ascii")) == stripped.path


@FAST
@given(mounts, rel_paths)
def test_a_mount_whose_slashes_are_escaped_is_one_segment_and_not_the_mount(mount: str, rel: str) -> None:
    assume("/" in mount[1:])  # at least two segments, so there is a '/' to escape
    path = mount + rel
    escaped = "/" + quote(path[1:], safe="").replace("%2F", "%2f")  # mixed case: still an encoded '/'
    stripped = strip_mount(path, escaped.encode("ascii"), mount)
    assert stripped.raw_path == escaped.encode("ascii")
    assert not is_under(stripped.route, mount)


@FAST
@given(mounts, rel_paths)
def test_a_path_outside_the_mount_passes_unchanged(mount: str, rel: str) -> None:
    assume(mount and not is_under(rel, mount))
    raw = quote(rel).encode("ascii")
    assert (strip_mount(rel, raw, mount).path, strip_mount(rel, raw, mount).raw_path) == (rel, raw)


@FAST
@given(mounts, st.text(max_size=20))
def test_is_under_is_segment_wise(prefix: str, rest: str) -> None:
    assume(prefix)
    path = prefix + rest
    assert is_under(path, prefix) is (rest == "" or rest.startswith("/"))


# --- settings parsers ---


@FAST
@given(st.one_of(st.text(max_size=30), st.integers(), st.floats(), st.booleans(), st.none()))
def test_every_settings_parser_accepts_or_raises_a_config_error_naming_the_variable(value: Any) -> None:
    complaints = []
    for spec in SETTING_SPECS:
        try:
            spec.parse(value, spec.env)
        except ConfigError as exc:
            complaints.append((spec.env, str(exc)))
    assert all(env in message for env, message in complaints)


@FAST
@given(st.integers(0, 65535), st.sampled_from(["", " ", "\t"]))
def test_every_port_number_parses_from_its_text(port: int, pad: str) -> None:
    assert parse_port(f"{pad}{port}{pad}", "FLUXLIT_GATEWAY_PORT") == port


@FAST
@given(st.integers().filter(lambda n: not 0 <= n <= 65535))
def test_numbers_outside_the_port_range_are_refused(port: int) -> None:
    with pytest.raises(ConfigError, match="FLUXLIT_GATEWAY_PORT"):
        parse_port(str(port), "FLUXLIT_GATEWAY_PORT")


@FAST
@given(st.sampled_from(["1", "true", "yes", "on", "0", "false", "no", "off"]), st.booleans())
def test_boolean_words_parse_in_any_case(word: str, upper: bool) -> None:
    assert parse_bool(word.upper() if upper else word, "X") is (word in ("1", "true", "yes", "on"))


# --- redaction ---

secrets_ = st.text(string.ascii_letters + string.digits + "-_.~", min_size=12, max_size=40)
other_keys = st.text(string.ascii_lowercase + "_", min_size=1, max_size=8).filter(
    lambda k: not is_sensitive_query_key(k)
)
# A key holding a sensitive part anywhere: `my_session_id`, `xauthx`.
pattern_keys = st.tuples(
    st.text(string.ascii_lowercase + "_", max_size=6),
    st.sampled_from(SENSITIVE_NAME_PARTS),
    st.text(string.ascii_lowercase + "_", max_size=6),
).map("".join)


def case_variant(key: str, flips: list[bool]) -> str:
    return "".join(c.upper() if flip else c for c, flip in zip(key, flips + [False] * len(key), strict=False))


@FAST
@given(
    st.one_of(st.sampled_from(sorted(SENSITIVE_QUERY_KEYS)), pattern_keys),
    st.lists(st.booleans(), max_size=30),
    secrets_,
    st.lists(st.tuples(other_keys, st.text(string.ascii_letters, max_size=8)), max_size=4),
    st.booleans(),
)
def test_no_secret_query_value_survives_redaction(
    key: str, flips: list[bool], secret: str, others: list[tuple[str, str]], percent_encode_key: bool
) -> None:
    spelled = case_variant(key, flips)
    if percent_encode_key:
        spelled = "".join(f"%{ord(c):02X}" for c in spelled)
    query = urlencode(others) + ("&" if others else "") + f"{spelled}={quote(secret)}"
    out = redact_query(query)
    assert secret not in out
    assert quote(secret) not in out
    assert "REDACTED" in unquote(out)


@FAST
@given(st.lists(st.tuples(other_keys, st.text(string.ascii_letters + string.digits, max_size=8)), max_size=5))
def test_queries_without_secrets_are_left_alone(pairs: list[tuple[str, str]]) -> None:
    query = urlencode(pairs)
    assert redact_query(query) == query


@FAST
@given(
    st.one_of(st.sampled_from(sorted(SENSITIVE_HEADERS | {"authorization", "proxy-authorization"})), pattern_keys),
    st.lists(st.booleans(), max_size=30),
    st.sampled_from(["", "Bearer ", "Basic ", "Token ", "Digest "]),
    secrets_,
)
def test_no_secret_header_value_survives_redaction(name: str, flips: list[bool], scheme: str, secret: str) -> None:
    ((_, out_value),) = redact_headers([(case_variant(name, flips), scheme + secret)])
    assert secret not in out_value
    assert out_value in (REDACTED, f"{scheme.strip()} {REDACTED}")


# --- request ids ---

VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


@FAST
@given(st.one_of(st.none(), st.binary(max_size=200), st.text(max_size=140).map(str.encode)))
def test_the_chosen_request_id_is_always_safe_to_log_and_echo(inbound: bytes | None) -> None:
    chosen = pick_request_id(inbound)
    assert VALID_ID.fullmatch(chosen)
    if inbound is not None and is_valid_request_id(inbound):
        assert chosen == inbound.decode()
    elif inbound is not None:
        assert chosen.encode() != inbound


@FAST
@given(
    st.text(string.ascii_letters + string.digits + "._-", min_size=0, max_size=3), st.sampled_from("\r\n \"'\x00{}%")
)
def test_request_ids_with_control_or_quoting_characters_are_replaced(prefix: str, bad: str) -> None:
    assert not is_valid_request_id((prefix + bad).encode("latin-1"))
