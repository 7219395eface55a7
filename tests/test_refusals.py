"""Pure refusal rules: which versions, target lengths and spellings are refused before routing, and with what."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest

from fluxlit.gateway.refusals import RequestLimits, target_refusal, version_refusal

LIMITS = RequestLimits(max_url_bytes=64, max_header_bytes=1024, allow_encoded_slashes=False)


@pytest.mark.parametrize(
    ("version", "status"),
    [
        *[("1.1", None), ("1.0", None), ("1.2", None), ("1.9", None), ("2", None), ("3", None)],
        *[("2.0", 505), ("3.0", 505), ("0.9", 505), ("9.9", 505)],
    ],
)
def test_versions(version: str, status: int | None) -> None:
    refusal = version_refusal(version)
    assert (refusal[0] if refusal else None) == status


def test_the_505_names_the_version_and_what_is_served() -> None:
    assert version_refusal("2.0") == (
        505,
        "HTTP/2.0 is not supported on this connection: use HTTP/1.1 (or HTTP/2 over TLS).",
    )


def scope(raw: bytes | None, query: bytes = b"", path: str | None = None) -> dict[str, Any]:
    return {
        "raw_path": raw,
        "path": path if path is not None else unquote((raw or b"").decode()),
        "query_string": query,
    }


TARGETS: dict[str, tuple[dict[str, Any], int | None]] = {
    "plain": (scope(b"/api/x"), None),
    "at-the-limit": (scope(b"/" + b"a" * 63), None),
    "over-the-limit": (scope(b"/" + b"a" * 64), 414),
    "query-counts": (scope(b"/a", b"q=" + b"b" * 59), None),
    "query-over": (scope(b"/a", b"q=" + b"b" * 60), 414),
    "no-raw-path": (scope(None, path="/x/y"), None),
    "no-raw-path-relative": (scope(None, path="x"), 400),
    "absolute-form": (scope(b"http://evil/api"), 400),
    "encoded-slash": (scope(b"/api%2Fx"), 400),
    "encoded-slash-lower": (scope(b"/api%2fx"), 400),
    "encoded-backslash": (scope(b"/api%5Cx"), 400),
    "literal-backslash": (scope(b"/api\\x"), 400),
    "double-encoded-slash": (scope(b"/api%252Fx"), None),  # decodes to the text '%2F': one segment either way
    "other-escapes": (scope(b"/%61pi/%20x"), None),
    "dot-segment": (scope(b"/a/../b"), 400),
    "encoded-dot-segment": (scope(b"/a/%2e%2e/b"), 400),
    "dots-inside-a-segment": (scope(b"/a/..b/c."), None),
}


@pytest.mark.parametrize(("request_scope", "status"), TARGETS.values(), ids=TARGETS.keys())
def test_targets(request_scope: dict[str, Any], status: int | None) -> None:
    refusal = target_refusal(request_scope, LIMITS)
    assert (refusal[0] if refusal else None) == status


@pytest.mark.parametrize("raw", [b"/api%2Fx", b"/api%5cx", b"/api\\x"])
def test_allowed_encoded_slashes_pass(raw: bytes) -> None:
    allowing = RequestLimits(max_url_bytes=64, max_header_bytes=1024, allow_encoded_slashes=True)
    assert target_refusal(scope(raw), allowing) is None


def test_allowed_encoded_slashes_still_refuse_the_dot_segments_they_hide() -> None:
    allowing = RequestLimits(max_url_bytes=64, max_header_bytes=1024, allow_encoded_slashes=True)
    assert target_refusal(scope(b"/a%2F..%2Fb"), allowing) == (400, "Paths with '.' or '..' segments are refused.")
