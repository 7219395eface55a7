#!/usr/bin/env bash
# SIGTERM with a slow request in flight: the request completes, the gateway exits 0 within TIMEOUT_S, no orphan.
source "$(dirname "$0")/_lib.sh"
TIMEOUT_S="${TIMEOUT_S:-20}"
start_server --graceful-timeout 10
wait_code "$BASE/api/readyz" 200 60 || fail "not ready"
child=$(child_pid)
curl -s --max-time 30 -o "$WORK/slow.json" -w '%{http_code}' "$BASE/api/slow?seconds=2" >"$WORK/slow.code" &
curl_pid=$!
sleep 0.5
kill -TERM "$SERVER_PID"
started=$SECONDS
wait "$curl_pid" || true
[ "$(cat "$WORK/slow.code")" = 200 ] || fail "in-flight request got $(cat "$WORK/slow.code") instead of 200"
while kill -0 "$SERVER_PID" 2>/dev/null && [ $((SECONDS - started)) -lt "$TIMEOUT_S" ]; do sleep 0.1; done
kill -0 "$SERVER_PID" 2>/dev/null && fail "still running after ${TIMEOUT_S}s"
wait "$SERVER_PID" && code=0 || code=$?
[ "$code" = 0 ] || fail "exit code $code"
kill -0 "$child" 2>/dev/null && fail "Streamlit child $child left behind"
[ ! -e "$STATE_FILE" ] || fail "state file left behind"
pass "in-flight request completed, exit 0 in $((SECONDS - started))s, no orphan"
