"""Protocol decisions as tables: reuse, retry, failure statuses, close codes, config validation."""

from __future__ import annotations

import h11
import pytest
from fluxlit_proxy import ProxyConfig, Upstream
from fluxlit_proxy.close_codes import code_after_upstream_loss, sendable_close_code, sendable_close_reason
from fluxlit_proxy.failures import (
    Failure,
    body_too_large_refusal,
    unavailable_refusal,
    websocket_refusal_for_failure,
)
from fluxlit_proxy.reuse import is_expired, keeps_alive, may_hand_out, may_retry, may_reuse
from fluxlit_proxy.ws_handshake import upstream_host_value

REUSE_BASE = {
    "request_state": h11.DONE,
    "response_state": h11.DONE,
    "request_written": True,
    "request_ended_first": True,
    "bytes_past_response": False,
}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, True),
        ({"response_state": h11.MUST_CLOSE}, False),  # upstream said Connection: close, or HTTP/1.0
        ({"request_state": h11.MUST_CLOSE}, False),
        ({"request_state": h11.SEND_BODY}, False),  # upstream answered before our body was sent
        ({"response_state": h11.SEND_BODY}, False),  # response cut short (client went away)
        ({"response_state": h11.ERROR}, False),
        ({"response_state": h11.CLOSED}, False),
        # h11 framed the end of the request, the write holding it was cancelled: "0\r\n\r\n" never left
        ({"request_written": False}, False),
        # answered early, the request ended afterwards: the upstream may have closed instead of reading on
        ({"request_ended_first": False}, False),
        ({"bytes_past_response": True}, False),  # unasked bytes would answer the next request
    ],
)
def test_may_reuse_only_when_both_messages_ended_cleanly_and_in_order(change, expected):
    assert may_reuse(**{**REUSE_BASE, **change}) is expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, True),
        ({"same_upstream": False}, False),  # a restarted child on a new port
        ({"idle_for": 3.99}, True),
        ({"idle_for": 4.0}, False),  # expired: the upstream's keep-alive is about to close it
        ({"peer_closed_or_spoke": True}, False),  # closed (EOF) or written to unasked
    ],
)
def test_may_hand_out(change, expected):
    base = {"same_upstream": True, "idle_for": 1.0, "idle_timeout": 4.0, "peer_closed_or_spoke": False}
    assert may_hand_out(**{**base, **change}) is expected


@pytest.mark.parametrize(
    ("version", "headers", "expected"),
    [
        (b"1.1", [], True),
        (b"1.1", [(b"connection", b"keep-alive")], True),
        (b"1.1", [(b"connection", b"close")], False),
        (b"1.1", [(b"Connection", b"Upgrade, Close")], False),
        (b"1.1", [(b"connection", b"closed")], True),  # a token, not a substring
        (b"1.0", [], False),
        (b"1.0", [(b"connection", b"keep-alive")], False),  # as h11 judges it
    ],
)
def test_keeps_alive_as_h11_judges_it(version, headers, expected):
    assert keeps_alive(version, headers) is expected


@pytest.mark.parametrize(
    ("idle_since", "now", "timeout", "expected"),
    [(0.0, 29.9, 30.0, False), (0.0, 30.0, 30.0, True), (10.0, 50.0, 30.0, True)],
)
def test_is_expired(idle_since, now, timeout, expected):
    assert is_expired(idle_since, now, timeout) is expected


RETRY_BASE = {
    "method": "GET",
    "connection_reused": True,
    "body_consumed": False,
    "response_bytes_seen": 0,
    "failure": Failure.RESET,
    "attempt": 0,
}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, True),
        ({"method": "HEAD"}, True),
        ({"method": "OPTIONS"}, True),
        ({"method": "put"}, True),
        ({"method": "POST"}, False),
        ({"method": "PATCH"}, False),
        ({"connection_reused": False}, False),  # a fresh connection failing is a real failure
        ({"body_consumed": True}, False),  # the body cannot be replayed, it was streamed
        ({"response_bytes_seen": 1}, False),
        ({"failure": Failure.PROTOCOL}, False),
        ({"failure": Failure.READ_TIMEOUT}, False),
        ({"attempt": 1}, False),  # once only
    ],
)
def test_may_retry(change, expected):
    assert may_retry(**{**RETRY_BASE, **change}) is expected


@pytest.mark.parametrize(
    ("failure", "status", "hook_kind"),
    [
        (Failure.CONNECT_REFUSED, 502, "connect"),
        (Failure.CONNECT_TIMEOUT, 502, "connect"),
        (Failure.READ_TIMEOUT, 504, "timeout"),
        (Failure.WRITE_TIMEOUT, 504, "timeout"),
        (Failure.RESET, 502, "reset"),
        (Failure.PROTOCOL, 502, "protocol"),
    ],
)
def test_failure_status_and_hook_kind(failure, status, hook_kind):
    assert failure.status == status
    assert failure.hook_kind == hook_kind
    assert websocket_refusal_for_failure(failure).close_code == 1011


@pytest.mark.parametrize(("restarting", "close_code"), [(False, 1013), (True, 1012)])
def test_unavailable_refusal(restarting, close_code):
    refusal = unavailable_refusal("starting up", 3, restarting)
    assert (refusal.status, refusal.text, refusal.close_code, refusal.retry_after_seconds) == (
        503,
        "starting up",
        close_code,
        3,
    )


def test_body_too_large_refusal():
    refusal = body_too_large_refusal(10)
    assert (refusal.status, refusal.close_code) == (413, 1009)
    assert "10" in refusal.text


@pytest.mark.parametrize(
    ("observed", "sent"),
    [
        (None, 1000),
        (1000, 1000),
        (1001, 1001),
        (1002, 1002),
        (1003, 1003),
        (1004, 1011),  # reserved
        (1005, 1000),  # closed cleanly without a code
        (1006, 1011),  # vanished without a close frame
        (1007, 1007),
        (1008, 1008),
        (1009, 1009),
        (1011, 1011),
        (1012, 1012),
        (1013, 1013),
        (1014, 1014),
        (1015, 1011),  # TLS failure, local only
        (1016, 1011),
        (2999, 1011),
        (3000, 3000),
        (4000, 4000),
        (4999, 4999),
        (5000, 1011),
        (999, 1011),
    ],
)
def test_sendable_close_code(observed, sent):
    assert sendable_close_code(observed) == sent


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (None, ""),
        ("", ""),
        ("bye", "bye"),
        ("x" * 123, "x" * 123),
        ("x" * 200, "x" * 123),
        ("\u00e9" * 62, "\u00e9" * 61),  # 124 bytes: cut on a character boundary, not mid-character
    ],
)
def test_sendable_close_reason_fits_a_close_frame(reason, expected):
    assert sendable_close_reason(reason) == expected


@pytest.mark.parametrize(("restarting", "code"), [(False, 1011), (True, 1012)])
def test_code_after_upstream_loss(restarting, code):
    assert code_after_upstream_loss(restarting) == code


@pytest.mark.parametrize(
    ("host", "upstream", "expected"),
    [
        (b"app.example:8080", Upstream(port=1), "app.example:8080"),
        (None, Upstream(port=9), "127.0.0.1:9"),
        (None, Upstream(unix_path="/tmp/s"), "localhost"),
        # Not representable unchanged through wsproto's IDNA encoding: use the upstream's own name.
        (b"caf\xc3\xa9.example", Upstream(port=9), "127.0.0.1:9"),
    ],
)
def test_upstream_host_value(host, upstream, expected):
    assert upstream_host_value(host, upstream) == expected


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"path_prefix": "apps"}, {"path_prefix": "/apps/"}, {"port": 1, "path_prefix": "/caf\u00e9"}],
)
def test_upstream_rejects_bad_values_with_a_fix(kwargs):
    with pytest.raises(ValueError, match="Upstream"):
        Upstream(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"connect_timeout": 0},
        {"read_timeout": -1},
        {"ws_keepalive_interval": 0},
        {"pool_max_connections": -1},
        {"pool_idle_timeout": 0},
        {"max_request_body_bytes": -1},
        {"ws_max_message_bytes": 0},
        {"ws_message_stall_timeout": 0},
    ],
)
def test_proxy_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError, match="ProxyConfig"):
        ProxyConfig(**kwargs)
