"""Pure rules for the mount and the API prefix."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from fluxlit.config.paths import is_under, normalize_mount, routing_path, strip_mount
from fluxlit.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "allow_empty", "expected"),
    [
        ("/api", False, "/api"),
        ("/api/", False, "/api"),
        ("//api//v1/", False, "/api/v1"),
        ("", True, ""),
        ("/", True, ""),
        (" /apps/demo ", True, "/apps/demo"),
    ],
)
def test_normalize_mount_accepts(value: str, allow_empty: bool, expected: str) -> None:
    assert normalize_mount(value, name="X", allow_empty=allow_empty) == expected


@pytest.mark.parametrize(
    ("value", "allow_empty", "message"),
    [
        ("api/", False, "X='api/' must start with '/': try '/api'"),
        ("", False, "must not be empty"),
        ("/", False, "must not be empty"),
        ("/a/../b", True, "'..'"),
        ("/a?b", True, "plain path segments"),
        ("/a%2Fb", True, "plain path segments"),
    ],
)
def test_normalize_mount_rejects_with_the_fix(value: str, allow_empty: bool, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?").replace("(", r"\(")):
        normalize_mount(value, name="X", allow_empty=allow_empty)


@pytest.mark.parametrize(
    ("path", "prefix", "expected"),
    [
        ("/api", "/api", True),
        ("/api/", "/api", True),
        ("/api/x", "/api", True),
        ("/apix", "/api", False),
        ("/", "/api", False),
        ("/anything", "", True),
    ],
)
def test_is_under_is_segment_wise(path: str, prefix: str, expected: bool) -> None:
    assert is_under(path, prefix) is expected


@pytest.mark.parametrize(
    ("path", "raw", "mount", "rel_path", "rel_raw"),
    [
        ("/x", b"/x", "", "/x", b"/x"),
        ("/m/x", b"/m/x", "/m", "/x", b"/x"),
        ("/m", b"/m", "/m", "/", b"/"),
        ("/mx/y", b"/mx/y", "/m", "/mx/y", b"/mx/y"),
        ("/x", b"/x", "/m", "/x", b"/x"),  # already stripped by a proxy in front
        ("/m/a b/é", b"/m/a%20b/%C3%A9", "/m", "/a b/é", b"/a%20b/%C3%A9"),
        ("/m/x", b"/%6D/x", "/m", "/x", b"/x"),  # the mount spelled with escapes is still the mount
        ("/m/a/b", b"/m/a%2Fb", "/m", "/a/b", b"/a%2Fb"),
        ("/m/a/b", b"/m%2Fa/b", "/m", "/m/a/b", b"/m%2Fa/b"),  # one segment 'm/a': not under the mount
        ("/p", None, "", "/p", b"/p"),
    ],
)
def test_strip_mount_keeps_raw_bytes(path: str, raw: bytes | None, mount: str, rel_path: str, rel_raw: bytes) -> None:
    rel = strip_mount(path, raw, mount)
    assert (rel.path, rel.raw_path) == (rel_path, rel_raw)


@pytest.mark.parametrize(
    ("raw", "route"),
    [
        (b"/api/healthz", "/api/healthz"),
        (b"/%61pi/x", "/api/x"),
        (b"/a%20b/%C3%A9", "/a b/é"),
        (b"/api%2Fhealthz", "/api%2Fhealthz"),
        (b"/api%2fsmoke", "/api%2Fsmoke"),
        (b"/api%5cx", "/api%5Cx"),
        (b"/a%252Fb", "/a%2Fb"),  # a literal '%2F' once decoded: still one segment
        (b"/a\\b", "/a\\b"),
    ],
)
def test_routing_path_decodes_each_segment_but_never_an_encoded_separator(raw: bytes, route: str) -> None:
    assert routing_path(raw) == route


@pytest.mark.parametrize(
    ("raw", "mount", "prefix", "under"),
    [
        (b"/api/healthz", "", "/api", True),
        (b"/api%2Fhealthz", "", "/api", False),
        (b"/apps/demo/api/x", "/apps/demo", "/api", True),
        (b"/apps%2Fdemo/api/x", "/apps/demo", "/api", False),
        (b"/apps/demo%2Fapi/x", "/apps/demo", "/api", False),
        (b"/apps/demo/%61pi/x", "/apps/demo", "/api", True),
    ],
)
def test_a_prefix_is_matched_on_the_raw_paths_segments(raw: bytes, mount: str, prefix: str, under: bool) -> None:
    rel = strip_mount(unquote(raw.decode()), raw, mount)
    assert is_under(rel.route, prefix) is under
