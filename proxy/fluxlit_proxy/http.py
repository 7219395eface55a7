"""Forwarding one HTTP request: build what goes upstream, run the exchange (retried once), report failures."""

from __future__ import annotations

import logging

import h11

from .asgi import Headers, Receive, Scope, Send, request_id_of, scope_headers
from .config import ProxyConfig, Upstream
from .exchange import Client, ClientStalled, Exchange, Request
from .failures import BodyTooLarge, ResponseAborted, UpstreamError, body_too_large_refusal
from .headers import (
    BodyFraming,
    ClientHop,
    ensure_host,
    first_header,
    forward_request_headers,
    framing_headers,
    host_fallback,
    request_body_framing,
    request_target,
)
from .hooks import ProxyHooks
from .pool import ConnectionPool
from .replies import send_plain_response
from .reuse import may_retry
from .transport import describe

log = logging.getLogger("proxy")


def _build_request(scope: Scope, headers: Headers, upstream: Upstream, framing: BodyFraming) -> Request:
    client = scope.get("client")
    server = scope.get("server")
    hop = ClientHop(
        client_host=client[0] if client else None,
        scheme=scope.get("scheme", "http"),
        server_port=server[1] if server else None,
        root_path=scope.get("root_path", ""),
    )
    outgoing = ensure_host(forward_request_headers(headers, hop), host_fallback(server, upstream.host))
    target = request_target(upstream.path_prefix, scope.get("raw_path"), scope["path"], scope.get("query_string", b""))
    expect = first_header(headers, b"expect")
    return Request(
        head=h11.Request(
            method=scope["method"].encode("ascii"), target=target, headers=outgoing + framing_headers(framing)
        ),
        framing=framing,
        expects_continue=framing.kind != "none" and expect is not None and expect.lower() == b"100-continue",
    )


async def _settle_framing(client: Client) -> BodyFraming:
    """HTTP/2+ without Content-Length: look at the first body message to choose the framing."""
    message = await client.receive()
    if message["type"] == "http.disconnect":
        client.gone = True
        return BodyFraming("none")
    client.pending.append(message)
    if message.get("more_body", False):
        return BodyFraming("chunked")
    body = message.get("body", b"")
    return BodyFraming("length", len(body)) if body else BodyFraming("none")


async def forward_http(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    upstream: Upstream,
    pool: ConnectionPool,
    config: ProxyConfig,
    hooks: ProxyHooks,
) -> None:
    client = Client(receive, send)
    headers = scope_headers(scope)
    method = scope["method"]
    framing = request_body_framing(scope.get("http_version", "1.1"), headers)
    if framing.kind == "unknown":
        framing = await _settle_framing(client)
        if client.gone:
            return
    limit = config.max_request_body_bytes
    if limit is not None and framing.kind == "chunked" and not client.pending:
        # A chunked body names no size: look at its first message before anything goes upstream, so a body
        # over the limit from its first bytes gets 413 instead of racing the upstream's own early answer.
        first = await client.receive()
        if first["type"] == "http.disconnect":
            client.gone = True
            return
        client.pending.append(first)
        first_size = len(first.get("body", b""))
        if first_size > limit:
            framing = BodyFraming("length", first_size)
    if limit is not None and framing.length is not None and framing.length > limit:
        log.warning(
            "%s: 413, request body of %d bytes over %d",
            _context(scope, upstream),
            framing.length,
            limit,
            extra=_extra(headers),
        )
        await send_plain_response(send, 413, body_too_large_refusal(limit).text)
        return
    try:
        request = _build_request(scope, headers, upstream, framing)
    except h11.LocalProtocolError as exc:
        log.warning("%s: 400, request not forwardable: %s", _context(scope, upstream), exc, extra=_extra(headers))
        await send_plain_response(send, 400, "request cannot be forwarded")
        return

    for attempt in range(2):
        try:
            conn = await pool.acquire(upstream, fresh=attempt > 0)
        except UpstreamError as exc:
            await _report(exc, client, hooks, scope, headers, upstream)
            return
        exchange = Exchange(conn, request, client, config)
        try:
            await exchange.run()
        finally:
            if exchange.complete:
                await pool.release(conn)
            else:
                await pool.discard(conn)
        if exchange.complete or client.gone:
            return
        failure = exchange.failure
        if isinstance(failure, UpstreamError) and may_retry(
            method=method,
            connection_reused=conn.reused,
            body_consumed=client.body_consumed,
            response_bytes_seen=conn.bytes_received,
            failure=failure.failure,
            attempt=attempt,
        ):
            if log.isEnabledFor(logging.DEBUG):
                context = _context(scope, upstream)
                log.debug("%s: kept-alive connection was stale (%s); retrying", context, failure, extra=_extra(headers))
            continue
        assert failure is not None
        await _report(failure, client, hooks, scope, headers, upstream)
        return


def _context(scope: Scope, upstream: Upstream) -> str:
    """The request as log lines name it; built only when there is something to log."""
    return f"{scope['method']} {scope.get('path', '')} -> {describe(upstream)}"


def _extra(headers: Headers) -> dict[str, str]:
    return {"request_id": request_id_of(headers)}


async def _report(
    failure: UpstreamError | BodyTooLarge | ClientStalled,
    client: Client,
    hooks: ProxyHooks,
    scope: Scope,
    headers: Headers,
    upstream: Upstream,
) -> None:
    """One WARNING line, the hook, and the client told: a status if possible, else an aborted response."""
    context, extra = _context(scope, upstream), _extra(headers)
    if isinstance(failure, UpstreamError):
        hooks.upstream_error(failure.failure.hook_kind)
    if client.response_started or isinstance(failure, ClientStalled):
        log.warning("%s: response aborted: %s", context, failure, extra=extra)
        raise ResponseAborted(f"{context}: {failure}")
    if isinstance(failure, UpstreamError):
        status, text = failure.failure.status, failure.failure.text
    else:
        refusal = body_too_large_refusal(failure.limit)
        status, text = refusal.status, refusal.text
    log.warning("%s: %d, %s", context, status, failure, extra=extra)
    await send_plain_response(client.send, status, text)
