"""Which headers cross the proxy in each direction, the X-Forwarded-* it adds, and the target it asks for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from .asgi import Header, Headers

# RFC 9110 section 7.6.1, plus the legacy names browsers and old proxies still send.
HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Client-sent values of these are replaced, never trusted: they describe this hop.
SET_BY_PROXY: frozenset[bytes] = frozenset(
    {b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port", b"x-forwarded-prefix"}
)
# The ASGI server in front of us always adds its own Date and Server (hypercorn 0.18 does so
# unconditionally), so passing the upstream's would give the client two of each.
SUPPLIED_BY_SERVER: frozenset[bytes] = frozenset({b"date", b"server"})
# Negotiated per leg: each leg has its own key, version, extensions and chosen subprotocol.
WEBSOCKET_HANDSHAKE: frozenset[bytes] = frozenset(
    {
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"sec-websocket-accept",
    }
)


def header_values(headers: Sequence[Header], name: bytes) -> list[bytes]:
    return [value for key, value in headers if key.lower() == name]


def first_header(headers: Headers, name: bytes) -> bytes | None:
    values = header_values(headers, name)
    return values[0] if values else None


def _tokens(value: bytes) -> frozenset[bytes]:
    return frozenset(token.strip().lower() for token in value.split(b",") if token.strip())


def connection_tokens(headers: Sequence[Header]) -> frozenset[bytes]:
    """Header names listed in any Connection header: hop-by-hop for this message only."""
    tokens: frozenset[bytes] = frozenset()
    for value in header_values(headers, b"connection"):
        tokens |= _tokens(value)
    return tokens


def end_to_end(headers: Sequence[Header]) -> Headers:
    """Drop hop-by-hop headers and every header the Connection header names; order is kept."""
    kept = [(name, value) for name, value in headers if name.lower() not in HOP_BY_HOP]
    if len(kept) == len(headers):
        return kept  # no Connection header, so nothing it names to drop
    drop = connection_tokens(headers)
    return [(name, value) for name, value in kept if name.lower() not in drop] if drop else kept


def forwarded_proto(scheme: str) -> bytes:
    return b"https" if scheme in ("https", "wss") else b"http"


@dataclass(frozen=True)
class ClientHop:
    """What the proxy knows of the hop from the client, from the ASGI scope."""

    client_host: str | None
    scheme: str
    server_port: int | None
    root_path: str


def forwarding_headers(chain: list[bytes], host: bytes | None, hop: ClientHop) -> Headers:
    """X-Forwarded-*: For appends this hop's client to the inbound `chain`; the rest describe this hop."""
    if hop.client_host:
        chain = [*chain, hop.client_host.encode("latin-1")]
    added: Headers = []
    if chain:
        added.append((b"x-forwarded-for", b", ".join(chain)))
    added.append((b"x-forwarded-proto", forwarded_proto(hop.scheme)))
    if host is not None:
        added.append((b"x-forwarded-host", host))
    if hop.server_port is not None:
        added.append((b"x-forwarded-port", str(hop.server_port).encode("ascii")))
    if hop.root_path:
        added.append((b"x-forwarded-prefix", hop.root_path.encode("utf-8")))
    return added


# Never passed on as the client sent them: hop-by-hop, describing this hop, or rebuilt from the framing.
_NOT_FORWARDED: frozenset[bytes] = HOP_BY_HOP | SET_BY_PROXY | {b"x-forwarded-for", b"content-length"}


def forward_request_headers(headers: Headers, hop: ClientHop) -> Headers:
    """Request headers for the upstream, without body framing (see `framing_headers`).

    One pass over the headers, since it runs for every request.
    """
    kept: Headers = []
    chain: list[bytes] = []
    host: bytes | None = None
    named: frozenset[bytes] = frozenset()
    for name, value in headers:
        lowered = name.lower()
        if lowered in _NOT_FORWARDED:
            if lowered == b"x-forwarded-for":
                if value.strip():
                    chain.append(value.strip())
            elif lowered == b"connection":
                named |= _tokens(value)
            continue
        if lowered == b"host" and host is None:
            host = value
        kept.append((name, value))
    if named:
        kept = [(name, value) for name, value in kept if name.lower() not in named]
    return kept + forwarding_headers(chain, host, hop)


def websocket_request_headers(headers: Headers, hop: ClientHop) -> Headers:
    """Extra headers for the upstream handshake; wsproto writes Host and the Sec-WebSocket-* itself."""
    return [
        (name, value)
        for name, value in forward_request_headers(headers, hop)
        if name.lower() != b"host" and name.lower() not in WEBSOCKET_HANDSHAKE
    ]


def response_headers_for_client(headers: Sequence[Header]) -> Headers:
    """Upstream response headers as the client should see them: each once, in order, never merged.

    Content-Length is kept when it framed the upstream body (browsers show sizes and progress); when
    Transfer-Encoding framed it, Content-Length is dropped because the body was not framed by it.
    """
    kept = end_to_end([(name, value) for name, value in headers if name.lower() not in SUPPLIED_BY_SERVER])
    if len(kept) == len(headers) or not header_values(headers, b"transfer-encoding"):
        return kept  # the Transfer-Encoding header, which is hop-by-hop, would be missing
    return [(name, value) for name, value in kept if name.lower() != b"content-length"]


def websocket_response_headers(headers: Headers) -> Headers:
    """Headers of the upstream's handshake answer (101 or a rejection) worth passing to the client.

    Content-Length goes too: a rejection body may be cut short, and the ASGI server frames it anyway.
    """
    return [
        (name, value)
        for name, value in response_headers_for_client(headers)
        if name.lower() not in WEBSOCKET_HANDSHAKE and name.lower() != b"content-length"
    ]


@dataclass(frozen=True)
class BodyFraming:
    """How the client framed its request body; "unknown" means HTTP/2+ with no Content-Length."""

    kind: Literal["none", "length", "chunked", "unknown"]
    length: int | None = None


_FRAMING = frozenset({b"transfer-encoding", b"content-length"})


def request_body_framing(http_version: str, headers: Headers) -> BodyFraming:
    framing = [(name.lower(), value) for name, value in headers if name.lower() in _FRAMING]
    if any(name == b"transfer-encoding" for name, _ in framing):
        return BodyFraming("chunked")
    lengths = {value.strip() for _, value in framing}
    if len(lengths) == 1:
        (length,) = lengths
        if length.isdigit():
            return BodyFraming("length", int(length))
    if lengths:
        # Conflicting or malformed lengths never reach us through h11; stream what comes instead.
        return BodyFraming("chunked")
    if http_version in ("1.0", "1.1"):
        return BodyFraming("none")
    return BodyFraming("unknown")


def content_length_body(request_method: bytes, status: int, headers: Sequence[Header]) -> int | None:
    """The body length of a response framed by Content-Length alone, else None: chunked, read until
    close, or empty by rule (HEAD, 204, 304, a successful CONNECT) whatever the headers say."""
    if request_method == b"HEAD" or status in (204, 304) or (request_method == b"CONNECT" and 200 <= status < 300):
        return None
    length = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            return None
        if lowered == b"content-length":
            length = value
    return int(length) if length is not None and length.isdigit() else None


def framing_headers(framing: BodyFraming) -> Headers:
    if framing.kind == "length":
        return [(b"content-length", str(framing.length).encode("ascii"))]
    if framing.kind == "chunked":
        return [(b"transfer-encoding", b"chunked")]
    return []


_VCHAR = bytes(range(0x21, 0x7F))


def _escape_outside_vchar(target: bytes) -> bytes:
    # h11 only sends visible ASCII in a request target; escape anything else the way browsers do,
    # leaving every byte that was already valid (including existing %XX escapes) untouched.
    if not target.translate(None, _VCHAR):
        return target
    return b"".join(bytes([byte]) if 0x21 <= byte <= 0x7E else b"%%%02X" % byte for byte in target)


def request_target(path_prefix: str, raw_path: bytes | None, path: str, query_string: bytes) -> bytes:
    """The upstream request target: prefix + the client's raw path, byte-exact, + query."""
    raw = raw_path if raw_path is not None else quote(path).encode("ascii")
    target = path_prefix.encode("ascii") + (raw or b"/")
    if query_string:
        target += b"?" + query_string
    return _escape_outside_vchar(target)


def host_fallback(server: tuple[str, int | None] | None, upstream_host: str) -> bytes:
    """A Host for clients that sent none (HTTP/1.0): the address they reached us on."""
    if not server:
        return upstream_host.encode("ascii", "replace")
    host, port = server
    if ":" in host:
        host = f"[{host}]"
    return (f"{host}:{port}" if port is not None else host).encode("ascii", "replace")


def ensure_host(headers: Headers, fallback: bytes) -> Headers:
    """HTTP/1.1 requires exactly one Host; keep the client's untouched, add one only when missing."""
    if first_header(headers, b"host") is not None:
        return headers
    return [(b"host", fallback), *headers]
