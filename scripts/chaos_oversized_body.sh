#!/usr/bin/env bash
# A proxied body over FLUXLIT_GATEWAY_MAX_PROXY_REQUEST_BODY_BYTES (LIMIT_BYTES) gets 413; the server stays healthy.
source "$(dirname "$0")/_lib.sh"
LIMIT_BYTES="${LIMIT_BYTES:-32}"
FLUXLIT_GATEWAY_MAX_PROXY_REQUEST_BODY_BYTES="$LIMIT_BYTES" start_server
wait_code "$BASE/api/readyz" 200 60 || fail "not ready"
body=$(head -c $((LIMIT_BYTES + 16)) /dev/zero | tr '\0' 'x')
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST --data "$body" "$BASE/_stcore/upload_file/x/y" || true)
[ "$code" = 413 ] || fail "oversized body answered $code, expected 413"
chunked=$(printf '%s' "$body" | curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H 'Transfer-Encoding: chunked' --data-binary @- "$BASE/_stcore/upload_file/x/y" || true)
[ "$chunked" = 413 ] || fail "oversized chunked body answered $chunked, expected 413"
[ "$(http_code "$BASE/api/readyz")" = 200 ] || fail "not healthy afterwards"
pass "body of $((LIMIT_BYTES + 16)) bytes over a $LIMIT_BYTES-byte limit → 413 (Content-Length and chunked)"
