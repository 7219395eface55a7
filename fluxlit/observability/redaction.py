"""Pure redaction rules: what of a request may reach a log line."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode

REDACTED = "[REDACTED]"
# A name holding any of these (case-insensitively) is taken to carry a secret: `session_token`, `X-Auth-Token`,
# `x-amz-credential`, `api_key`. Over-redacting a harmless `keyword` or `author` costs a log reader little; an
# exact list missed every spelling nobody wrote down.
SENSITIVE_NAME_PARTS = (
    "token", "secret", "password", "passwd", "auth", "key", "session", "sessid", "signature", "credential",
)  # fmt: skip
# Secret-holding query keys the parts above do not catch (OAuth's `code`, our own URL session id).
SENSITIVE_QUERY_KEYS = frozenset({"fluxlit_sid", "sid", "code", "jwt", "sig"})
SENSITIVE_HEADERS = frozenset({"cookie", "set-cookie", "sec-websocket-protocol"})


_SENSITIVE_PART = re.compile("|".join(SENSITIVE_NAME_PARTS), re.IGNORECASE)  # one C-level scan per name


def is_sensitive_name(name: str, exact: Iterable[str] = ()) -> bool:
    """True when `name` (a query key or header name) matches a sensitive part, or is one of `exact`."""
    return name.lower() in exact or _SENSITIVE_PART.search(name) is not None


def is_sensitive_query_key(name: str, extra_keys: Iterable[str] = ()) -> bool:
    """True for a query key whose value may not be logged; `extra_keys` are lower-case exact names."""
    lower = name.lower()
    return lower in SENSITIVE_QUERY_KEYS or lower in extra_keys or is_sensitive_name(lower)


def redact_query(query: str, extra_keys: Iterable[str] = ()) -> str:
    """The query string with values of secret-holding keys replaced; keys compare case-insensitively."""
    if not query:
        return ""
    extra = frozenset(k.lower() for k in extra_keys)
    pairs = parse_qsl(query, keep_blank_values=True)
    hidden = [is_sensitive_query_key(name, extra) for name, _ in pairs]
    if not any(hidden):
        return query
    return urlencode(
        [(name, REDACTED if hide else value) for (name, value), hide in zip(pairs, hidden, strict=True)], safe="[]"
    )


def redact_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Headers with credential-carrying values replaced (Authorization keeps its scheme)."""
    out = []
    for name, value in headers:
        lower = name.lower()
        if lower in ("authorization", "proxy-authorization") and " " in value:
            out.append((name, f"{value.split(' ', 1)[0]} {REDACTED}"))
        elif is_sensitive_name(lower, SENSITIVE_HEADERS):
            out.append((name, REDACTED))
        else:
            out.append((name, value))
    return out
