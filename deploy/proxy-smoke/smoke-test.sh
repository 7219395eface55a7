#!/usr/bin/env bash
# Smoke-check a FluxLit deployment (any URL: direct, behind nginx/Caddy/Traefik, with or without a sub-path).
#   ./smoke-test.sh [BASE_URL [PUBLIC_PREFIX]]    e.g. ./smoke-test.sh http://127.0.0.1:8083 /apps/my-app
# With no arguments it checks the kit's default site, the root one on http://127.0.0.1:8080 (docker-compose.yml).
# Checks healthz, readyz, the smoke app's marker, the HTML shell and its asset prefix, the request id round
# trip and the Streamlit WebSocket handshake. Exits non-zero on the first failed check.
set -euo pipefail
BASE_URL="${1:-${BASE_URL:-http://127.0.0.1:8080}}"
PREFIX="${2:-${PUBLIC_PREFIX:-}}"
CURL=(curl -sS --max-time "${TIMEOUT_S:-10}")
[ "${CURL_INSECURE:-0}" = 1 ] && CURL+=(-k)
URL="${BASE_URL%/}${PREFIX%/}"
fails=0
check() { if eval "$2"; then echo "PASS  $1"; else echo "FAIL  $1"; fails=$((fails + 1)); fi; }

body=$("${CURL[@]}" "$URL/api/healthz" || true)
check "healthz" '[[ "$body" == *"\"status\":\"ok\""* ]]'
ready=$("${CURL[@]}" "$URL/api/readyz" || true)
check "readyz" '[[ "$ready" == *"\"status\":\"ready\""* ]]'
smoke=$("${CURL[@]}" "$URL/api/smoke" || true)
check "smoke marker" '[[ "$smoke" == *fluxlit_smoke_ok* ]]'
rid=$("${CURL[@]}" -D - -o /dev/null -H "X-Request-ID: smoke-$$" "$URL/api/healthz" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-request-id"{print $2}')
check "request id preserved" '[ "$rid" = "smoke-$$" ]'
shell=$("${CURL[@]}" "$URL/" || true)
check "HTML shell" '[[ "$shell" == *"<div id=\"root\""* || "$shell" == *"id=\"root\""* ]]'
asset=$(printf '%s' "$shell" | grep -o 'src="[^"]*\.js"' | head -n 1 | sed 's/^src="//; s/"$//')
case "$asset" in
  http*) asset_url="$asset" ;;
  /*) asset_url="${BASE_URL%/}$asset" ;;
  *) asset_url="$URL/${asset#./}" ;;
esac
code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$asset_url" || true)
check "static asset under the prefix ($asset)" '[ -n "$asset" ] && [ "$code" = 200 ]'
ws=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 ${CURL_INSECURE:+$( [ "$CURL_INSECURE" = 1 ] && echo -k)} \
  -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
  -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' -H 'Sec-WebSocket-Protocol: streamlit' \
  --http1.1 "$URL/_stcore/stream" || true)
if [ "${SKIP_WS:-0}" = 1 ]; then echo "SKIP  websocket handshake"; else
  check "websocket handshake (got $ws)" '[ "$ws" = 101 ]'
fi
[ "$fails" -eq 0 ] || { echo "$fails check(s) failed for $URL"; exit 1; }
echo "all checks passed for $URL"
