"""Pure rules for requests the gateway refuses before routing: versions, sizes and targets read two ways.

Everything here looks at the ASGI scope only (hypercorn has parsed the request): `http_version`, `raw_path`,
`query_string`, `path`. What the header pass finds (framing, field count and size) is decided in the gateway's
one loop over the headers and checked first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fluxlit.config.paths import ENCODED_SEPARATOR

Refusal = tuple[int, str]

# What hypercorn writes in scope["http_version"]: h11 copies the request line's "X.Y"; h2 and h3 say "2" / "3".
_SERVED_VERSIONS = frozenset({"1.1", "1.0", "2", "3"})
_SLASH, _BACKSLASH, _PERCENT = ord("/"), ord("\\"), ord("%")


@dataclass(frozen=True)
class RequestLimits:
    """The size and spelling rules one gateway enforces (FLUXLIT_GATEWAY_MAX_URL_BYTES and its neighbours)."""

    max_url_bytes: int
    max_header_bytes: int
    allow_encoded_slashes: bool


def version_refusal(version: str) -> Refusal | None:
    """505 for a request line claiming a major version other than 1 over HTTP/1 framing (e.g. `HTTP/2.0`).

    A higher 1.x minor version is served as 1.1 (RFC 9110 2.5); real HTTP/2 and 3 arrive as "2" and "3".
    """
    if version in _SERVED_VERSIONS or version.startswith("1."):
        return None
    return 505, f"HTTP/{version[:8]} is not supported on this connection: use HTTP/1.1 (or HTTP/2 over TLS)."


def target_refusal(scope: Any, limits: RequestLimits) -> Refusal | None:
    """414 for a target over the URL limit; 400 for targets a proxy in front would route differently than we do:
    not origin-form, an encoded '/' or '\\' or a literal '\\' (unless allowed), '.' or '..' segments."""
    raw: bytes | None = scope.get("raw_path")
    path: str = scope["path"]
    target = raw if raw is not None else path.encode("utf-8", "surrogateescape")
    query: bytes | None = scope.get("query_string")
    if len(target) + (len(query) + 1 if query else 0) > limits.max_url_bytes:
        return 414, f"The request target is longer than {limits.max_url_bytes} bytes."
    # Bytes are tested by their int values: `b"/" in raw` costs several times `47 in raw` (this runs per request).
    if not target or target[0] != _SLASH:
        return 400, "Only origin-form request targets (starting with '/') are served."
    # Tomcat's defaults: a proxy that decodes %2F (or maps '\' to '/', as URL parsers do) sees other segments
    # than one that does not, so a rule on /api/* in front could be passed by spelling the slash differently.
    if not limits.allow_encoded_slashes and (
        _BACKSLASH in target or (_PERCENT in target and ENCODED_SEPARATOR.search(target) is not None)
    ):
        return 400, "Paths with an encoded '/' or '\\' (%2F, %5C) or a backslash are refused."
    if "/." in path and any(segment in (".", "..") for segment in path.split("/")):
        return 400, "Paths with '.' or '..' segments are refused."
    return None
