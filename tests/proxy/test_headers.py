"""Header rules as tables: what crosses the proxy, what it adds, and the target it asks for."""

from __future__ import annotations

import pytest
from fluxlit_proxy.headers import (
    BodyFraming,
    ClientHop,
    content_length_body,
    end_to_end,
    ensure_host,
    forward_request_headers,
    forwarded_proto,
    framing_headers,
    host_fallback,
    request_body_framing,
    request_target,
    response_headers_for_client,
    websocket_request_headers,
    websocket_response_headers,
)

HOP = ClientHop(client_host="10.0.0.9", scheme="https", server_port=8443, root_path="/mount")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"accept", b"*/*")], [(b"accept", b"*/*")]),
        (
            [
                (b"connection", b"keep-alive"),
                (b"keep-alive", b"timeout=5"),
                (b"proxy-connection", b"keep-alive"),
                (b"proxy-authenticate", b"Basic"),
                (b"proxy-authorization", b"Basic eA=="),
                (b"te", b"trailers"),
                (b"trailer", b"x-sum"),
                (b"transfer-encoding", b"chunked"),
                (b"upgrade", b"h2c"),
                (b"x-kept", b"1"),
            ],
            [(b"x-kept", b"1")],
        ),
        # Tokens named by Connection are hop-by-hop too, case-insensitively, across several headers.
        (
            [(b"connection", b"X-Secret, close"), (b"x-secret", b"s"), (b"connection", b"x-other"), (b"x-other", b"o")],
            [],
        ),
        # Order and duplicates of end-to-end headers are kept.
        ([(b"x-a", b"1"), (b"x-b", b"2"), (b"x-a", b"3")], [(b"x-a", b"1"), (b"x-b", b"2"), (b"x-a", b"3")]),
    ],
)
def test_end_to_end_drops_hop_by_hop_and_connection_tokens(headers, expected):
    assert end_to_end(headers) == expected


@pytest.mark.parametrize(
    ("incoming_xff", "client_host", "expected"),
    [
        ([], "10.0.0.9", b"10.0.0.9"),
        ([b"203.0.113.7"], "10.0.0.9", b"203.0.113.7, 10.0.0.9"),
        ([b"203.0.113.7, 198.51.100.1", b"192.0.2.4"], "10.0.0.9", b"203.0.113.7, 198.51.100.1, 192.0.2.4, 10.0.0.9"),
        ([b"203.0.113.7"], None, b"203.0.113.7"),
    ],
)
def test_x_forwarded_for_appends_the_client_never_replaces(incoming_xff, client_host, expected):
    headers = [(b"host", b"example.com")] + [(b"x-forwarded-for", value) for value in incoming_xff]
    hop = ClientHop(client_host=client_host, scheme="http", server_port=None, root_path="")
    out = forward_request_headers(headers, hop)
    assert [value for name, value in out if name == b"x-forwarded-for"] == [expected]


def test_forwarded_headers_describe_this_hop_and_replace_client_values():
    headers = [
        (b"host", b"app.example:8443"),
        (b"x-forwarded-proto", b"gopher"),
        (b"x-forwarded-host", b"evil"),
        (b"x-forwarded-port", b"1"),
        (b"x-forwarded-prefix", b"/evil"),
        (b"cookie", b"session=abc"),
        (b"authorization", b"Bearer t"),
    ]
    assert forward_request_headers(headers, HOP) == [
        (b"host", b"app.example:8443"),
        (b"cookie", b"session=abc"),
        (b"authorization", b"Bearer t"),
        (b"x-forwarded-for", b"10.0.0.9"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"app.example:8443"),
        (b"x-forwarded-port", b"8443"),
        (b"x-forwarded-prefix", b"/mount"),
    ]


def test_forwarded_prefix_and_port_are_omitted_when_unknown():
    hop = ClientHop(client_host="1.2.3.4", scheme="http", server_port=None, root_path="")
    names = [name for name, _ in forward_request_headers([(b"host", b"h")], hop)]
    assert b"x-forwarded-prefix" not in names
    assert b"x-forwarded-port" not in names


def test_request_framing_headers_are_rebuilt_not_copied():
    headers = [(b"host", b"h"), (b"content-length", b"5"), (b"transfer-encoding", b"chunked")]
    assert all(
        name not in (b"content-length", b"transfer-encoding") for name, _ in forward_request_headers(headers, HOP)
    )


@pytest.mark.parametrize(
    ("scheme", "expected"),
    [("http", b"http"), ("https", b"https"), ("ws", b"http"), ("wss", b"https")],
)
def test_forwarded_proto_maps_websocket_schemes_to_http(scheme, expected):
    assert forwarded_proto(scheme) == expected


@pytest.mark.parametrize(
    ("http_version", "headers", "expected"),
    [
        ("1.1", [], BodyFraming("none")),
        ("1.0", [], BodyFraming("none")),
        ("1.1", [(b"content-length", b"12")], BodyFraming("length", 12)),
        ("1.1", [(b"content-length", b"0")], BodyFraming("length", 0)),
        ("1.1", [(b"transfer-encoding", b"chunked")], BodyFraming("chunked")),
        ("1.1", [(b"transfer-encoding", b"chunked"), (b"content-length", b"3")], BodyFraming("chunked")),
        ("1.1", [(b"content-length", b"nope")], BodyFraming("chunked")),
        ("2", [], BodyFraming("unknown")),
        ("2", [(b"content-length", b"7")], BodyFraming("length", 7)),
    ],
)
def test_request_body_framing(http_version, headers, expected):
    assert request_body_framing(http_version, headers) == expected


@pytest.mark.parametrize(
    ("framing", "expected"),
    [
        (BodyFraming("none"), []),
        (BodyFraming("length", 42), [(b"content-length", b"42")]),
        (BodyFraming("chunked"), [(b"transfer-encoding", b"chunked")]),
    ],
)
def test_framing_headers(framing, expected):
    assert framing_headers(framing) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # Multiple Set-Cookie stay separate and in order, interleaving kept.
        (
            [(b"set-cookie", b"a=1"), (b"x-order", b"1"), (b"set-cookie", b"b=2")],
            [(b"set-cookie", b"a=1"), (b"x-order", b"1"), (b"set-cookie", b"b=2")],
        ),
        # Date and Server come from the ASGI server in front; passing them would duplicate them.
        ([(b"date", b"Mon"), (b"server", b"uvicorn"), (b"etag", b'"x"')], [(b"etag", b'"x"')]),
        # A Content-Length that framed the body is kept so browsers see sizes.
        ([(b"content-length", b"10")], [(b"content-length", b"10")]),
        # Chunked framing wins over Content-Length (RFC 9112 6.3), so that length is meaningless.
        ([(b"transfer-encoding", b"chunked"), (b"content-length", b"10")], []),
        (
            [
                (b"connection", b"close, x-hop"),
                (b"x-hop", b"1"),
                (b"keep-alive", b"t=5"),
                (b"content-encoding", b"gzip"),
            ],
            [(b"content-encoding", b"gzip")],
        ),
        (
            [(b"accept-ranges", b"bytes"), (b"content-range", b"bytes 0-1/10")],
            [(b"accept-ranges", b"bytes"), (b"content-range", b"bytes 0-1/10")],
        ),
    ],
)
def test_response_headers_for_client(headers, expected):
    assert response_headers_for_client(headers) == expected


def test_websocket_request_headers_leave_host_and_handshake_to_wsproto():
    headers = [
        (b"host", b"app.example"),
        (b"connection", b"Upgrade"),
        (b"upgrade", b"websocket"),
        (b"sec-websocket-key", b"k"),
        (b"sec-websocket-version", b"13"),
        (b"sec-websocket-extensions", b"permessage-deflate"),
        (b"sec-websocket-protocol", b"streamlit, token"),
        (b"origin", b"https://app.example"),
        (b"cookie", b"_streamlit_xsrf=x"),
        (b"user-agent", b"Mozilla"),
        (b"x-request-id", b"rid-1"),
    ]
    hop = ClientHop(client_host="1.2.3.4", scheme="wss", server_port=443, root_path="")
    assert websocket_request_headers(headers, hop) == [
        (b"origin", b"https://app.example"),
        (b"cookie", b"_streamlit_xsrf=x"),
        (b"user-agent", b"Mozilla"),
        (b"x-request-id", b"rid-1"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"app.example"),
        (b"x-forwarded-port", b"443"),
    ]


def test_websocket_response_headers_keep_cookies_only_of_the_handshake():
    headers = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", b"x"),
        (b"sec-websocket-protocol", b"streamlit"),
        (b"set-cookie", b"a=1"),
        (b"content-length", b"12"),
        (b"date", b"d"),
    ]
    assert websocket_response_headers(headers) == [(b"set-cookie", b"a=1")]


@pytest.mark.parametrize(
    ("prefix", "raw_path", "path", "query", "expected"),
    [
        ("", b"/", "/", b"", b"/"),
        ("/apps/demo", b"/x", "/x", b"", b"/apps/demo/x"),
        ("", b"/a%2Fb/%E2%9C%93", "/a/b/\u2713", b"q=%20&x", b"/a%2Fb/%E2%9C%93?q=%20&x"),
        # Lower-case escapes stay lower-case: bytes are never decoded and re-encoded.
        ("", b"/caf%c3%a9", "/caf\u00e9", b"", b"/caf%c3%a9"),
        # Without raw_path the decoded path is quoted once.
        ("", None, "/caf\u00e9 x", b"", b"/caf%C3%A9%20x"),
        # Bytes h11 may not send (non-ASCII, space) are escaped; everything else untouched.
        ("", b"/\xc3\xa9 x", "/", b"a=\xff", b"/%C3%A9%20x?a=%FF"),
        ("/p", b"", "", b"", b"/p/"),
    ],
)
def test_request_target_is_byte_exact(prefix, raw_path, path, query, expected):
    assert request_target(prefix, raw_path, path, query) == expected


@pytest.mark.parametrize(
    ("server", "upstream_host", "expected"),
    [
        (("127.0.0.1", 8000), "u", b"127.0.0.1:8000"),
        (("::1", 8000), "u", b"[::1]:8000"),
        (("sock", None), "u", b"sock"),
        (None, "upstream.local", b"upstream.local"),
    ],
)
def test_host_fallback(server, upstream_host, expected):
    assert host_fallback(server, upstream_host) == expected


def test_ensure_host_keeps_the_clients_host_byte_for_byte():
    headers = [(b"x", b"1"), (b"host", b"App.Example:80")]
    assert ensure_host(headers, b"fallback") == headers
    assert ensure_host([(b"x", b"1")], b"fallback") == [(b"host", b"fallback"), (b"x", b"1")]


@pytest.mark.parametrize(
    ("method", "status", "headers", "expected"),
    [
        (b"GET", 200, [(b"content-length", b"5")], 5),
        (b"GET", 200, [(b"Content-Length", b"0")], 0),
        (b"GET", 200, [(b"transfer-encoding", b"chunked")], None),
        (b"GET", 200, [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")], None),
        (b"GET", 200, [], None),  # read until close
        (b"HEAD", 200, [(b"content-length", b"5")], None),
        (b"GET", 204, [(b"content-length", b"5")], None),
        (b"GET", 304, [(b"content-length", b"5")], None),
        (b"CONNECT", 200, [(b"content-length", b"5")], None),
        (b"CONNECT", 407, [(b"content-length", b"5")], 5),
    ],
)
def test_content_length_body(method, status, headers, expected):
    assert content_length_body(method, status, headers) == expected
