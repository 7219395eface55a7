# Shared helpers for the chaos scripts: start `fluxlit serve` on loopback, wait, and always clean up by PID.
# shellcheck shell=bash
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || command -v python3 )}"
WORK="$(mktemp -d)"
STATE_FILE="$WORK/state.json"
LOG_FILE="${LOG_FILE:-$WORK/fluxlit.log}"
SERVER_PID=""

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT="${PORT:-$(free_port)}"
BASE="http://127.0.0.1:$PORT"

cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; echo "--- server log (tail) ---" >&2; tail -n 40 "$LOG_FILE" >&2 || true; exit 1; }
pass() { echo "PASS: $*"; }

start_server() {  # extra args are passed to `fluxlit serve`
  setsid "$PYTHON" -m fluxlit serve "$ROOT/examples/smoke_app/app.py:app" --port "$PORT" \
    --state-file "$STATE_FILE" --log-format json "$@" >"$LOG_FILE" 2>&1 </dev/null &
  SERVER_PID=$!
}

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time "${2:-5}" "$1" || true; }

wait_code() {  # wait_code URL CODE SECONDS
  local deadline=$((SECONDS + $3))
  while [ $SECONDS -lt $deadline ]; do
    [ "$(http_code "$1" 2)" = "$2" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

child_pid() { "$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$STATE_FILE"; }
