"""Pure redaction rules: what of a request may reach a log line."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode

REDACTED = "[REDACTED]"
SENSITIVE_QUERY_KEYS = frozenset(
    {
        "fluxlit_sid", "token", "auth_code", "access_token", "refresh_token", "id_token", "password", "code",
        "secret", "client_secret", "api_key", "apikey", "jwt", "signature", "sig",
        # Pre-signed cloud storage URLs carry their credentials in the query.
        "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature", "x-goog-credential",
    }
)  # fmt: skip
SENSITIVE_HEADERS = frozenset(
    {"authorization", "cookie", "set-cookie", "proxy-authorization", "sec-websocket-protocol", "x-api-key"}
)


def redact_query(query: str, extra_keys: Iterable[str] = ()) -> str:
    """The query string with values of secret-holding keys replaced; keys compare case-insensitively."""
    if not query:
        return ""
    keys = SENSITIVE_QUERY_KEYS.union(k.lower() for k in extra_keys)
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(name.lower() in keys for name, _ in pairs):
        return query
    return urlencode([(name, REDACTED if name.lower() in keys else value) for name, value in pairs], safe="[]")


def redact_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Headers with credential-carrying values replaced (Authorization keeps its scheme)."""
    out = []
    for name, value in headers:
        lower = name.lower()
        if lower in ("authorization", "proxy-authorization") and " " in value:
            out.append((name, f"{value.split(' ', 1)[0]} {REDACTED}"))
        elif lower in SENSITIVE_HEADERS:
            out.append((name, REDACTED))
        else:
            out.append((name, value))
    return out
