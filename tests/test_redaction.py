"""What redaction hides: query keys and header names matched on sensitive parts, not on an exact list."""

from __future__ import annotations

import pytest

from fluxlit.observability.redaction import REDACTED, is_sensitive_query_key, redact_headers, redact_query

QUERY_KEYS = {
    # Issue 15: these three were logged verbatim by the exact-key list.
    "session_token": True,
    "auth": True,
    "key": True,
    # ... each sensitive part, anywhere in the key, in any case
    "TOKEN": True,
    "refresh_token": True,
    "X-Amz-Security-Token": True,
    "client_secret": True,
    "password": True,
    "new_password": True,
    "passwd": True,
    "authorization": True,
    "oauth_state": True,
    "api_key": True,
    "apiKey": True,
    "sessionid": True,
    "PHPSESSID": True,
    "signature": True,
    "X-Goog-Signature": True,
    "X-Amz-Credential": True,
    "credentials": True,
    # ... and the exact names the parts do not catch
    "code": True,
    "jwt": True,
    "sig": True,
    "sid": True,
    "fluxlit_sid": True,
    # Over-redacted on purpose: a part inside a harmless word costs a log reader little.
    "keyword": True,
    "author": True,
    # Kept: no sensitive part, not an exact name.
    "page": False,
    "q": False,
    "id": False,
    "user": False,
    "state": False,
    "redirect_uri": False,
    "sort": False,
    "codec": False,
    "signal": False,
    "X-Amz-Expires": False,
}


@pytest.mark.parametrize(("key", "hidden"), QUERY_KEYS.items(), ids=QUERY_KEYS.keys())
def test_which_query_keys_are_redacted(key: str, hidden: bool) -> None:
    assert is_sensitive_query_key(key) is hidden
    expected = f"{key}={REDACTED}&page=2" if hidden else f"{key}=v4lue&page=2"
    assert redact_query(f"{key}=v4lue&page=2") == expected


HEADERS = {
    "Authorization": ("Bearer abc.def", f"Bearer {REDACTED}"),
    "Proxy-Authorization": ("Basic xyz", f"Basic {REDACTED}"),
    "Cookie": ("a=1", REDACTED),
    "Set-Cookie": ("a=1", REDACTED),
    "Sec-WebSocket-Protocol": ("streamlit, xsrf", REDACTED),
    "X-Auth-Token": ("t0k", REDACTED),
    "X-Session-Id": ("s1d", REDACTED),
    "X-API-Key": ("k3y", REDACTED),
    "X-Amz-Security-Token": ("t0k", REDACTED),
    "Sec-WebSocket-Key": ("dGhlIHNhbXBsZSBub25jZQ==", REDACTED),
    "Accept": ("text/html", "text/html"),
    "User-Agent": ("curl/8", "curl/8"),
    "Content-Type": ("application/json", "application/json"),
    "X-Request-ID": ("rid-1", "rid-1"),
    "Keep-Alive": ("timeout=5", "timeout=5"),
}


@pytest.mark.parametrize(("name", "values"), HEADERS.items(), ids=HEADERS.keys())
def test_which_headers_are_redacted(name: str, values: tuple[str, str]) -> None:
    value, expected = values
    assert redact_headers([(name, value)]) == [(name, expected)]


def test_extra_keys_add_exact_names() -> None:
    assert redact_query("tenant=acme&page=1", ["TENANT"]) == f"tenant={REDACTED}&page=1"
