"""The hypercorn options of a run: what the gateway relies on, and the parsers' limits set above its own."""

from __future__ import annotations

from typing import Any

from fluxlit.config.settings import Settings

# Hypercorn settings the gateway relies on: its access log off (hypercorn's is not structured; we write ours in
# fluxlit.observability.access); header sizes: hypercorn_options.
# Not hypercorn's WebSocket pings: in hypercorn 0.18 its ping loop outlives a closed WebSocket by up to one
# interval, and every graceful stop after a browser session then waited the full --graceful-timeout (11.6 s
# instead of 0.5 s, measured). Browsers are pinged by the supervisor's watchdog instead (ServeConfig.websocket,
# --ws-ping-interval), which ends with its WebSocket.
HYPERCORN_OPTIONS: dict[str, Any] = {
    "accesslog": None,
    "websocket_ping_interval": None,
    # The idle timer is also hypercorn's only header deadline: uvicorn's 5 s cuts trickled headers early. (It used
    # to bound an fd leak too; fluxlit_supervisor.hypercorn_fixes now frees a client-closed connection at once.)
    "keep_alive_timeout": 5.0,
    # No `server: hypercorn-h11` on every response: it names our stack to scanners and costs ~10-17 us/request
    # (bench/api_profile.py); a proxied response keeps no upstream `server` either (fluxlit_proxy.headers).
    "include_server_header": False,
}


def hypercorn_options(settings: Settings) -> dict[str, Any]:
    """HYPERCORN_OPTIONS with the parsers' header limits set above the gateway's own ones, which decide.

    h11 bounds a request head only while it is incomplete after a read (h11 issue 182: one chunk passes, the
    same bytes trickled fail), so its limit is a memory backstop above request line + header block; h2's
    header list (RFC 7541 counts 32 bytes a field) likewise. The gateway's count answers 431 either way.
    """
    # The gateway (~0.3 s with FastAPI) is not imported before Streamlit starts early, and this module is.
    from fluxlit.gateway.router import MAX_HEADER_FIELDS

    head = settings.max_url_bytes + settings.max_header_bytes + _HEAD_SLACK_BYTES
    return {
        "h11_max_incomplete_size": head,
        "h2_max_header_list_size": head + 32 * MAX_HEADER_FIELDS,
        **HYPERCORN_OPTIONS,  # last, so a benchmark variant that updates HYPERCORN_OPTIONS wins
    }


# Method, version, CRLFs and HTTP/2's pseudo-header names around the request target and header block.
_HEAD_SLACK_BYTES = 4096
