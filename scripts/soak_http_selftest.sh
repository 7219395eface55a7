#!/usr/bin/env bash
# soak_http.sh against `python -m http.server` on a free loopback port: proves the soak script itself, with no
# FluxLit involved (the scheduled soak workflow's first job and a slow test both run this). COUNT defaults to 40.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || command -v python3 )}"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  local status=$?
  if [ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null; then wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
PORT="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
echo "soak_http_selftest ok" >"$WORK/index.html"
"$PYTHON" -m http.server "$PORT" --bind 127.0.0.1 --directory "$WORK" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done
COUNT="${COUNT:-40}" BASE_URL="http://127.0.0.1:$PORT" PATH_SUFFIX=/ REQUIRE_BODY_SUBSTRING="soak_http_selftest ok" \
  "$ROOT/scripts/soak_http.sh"
