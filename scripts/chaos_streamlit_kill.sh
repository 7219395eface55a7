#!/usr/bin/env bash
# Kill the Streamlit child. MODE=restart (default): the gateway stays up and readiness returns to 200.
# MODE=exit: the gateway (started with --on-child-exit exit) exits non-zero. Exits non-zero when the check fails.
source "$(dirname "$0")/_lib.sh"
MODE="${MODE:-restart}"
start_server --on-child-exit "$MODE"
wait_code "$BASE/api/readyz" 200 "${TIMEOUT_S:-60}" || fail "not ready"
victim=$(child_pid)
kill -KILL "$victim"
if [ "$MODE" = exit ]; then
  for _ in $(seq 1 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$SERVER_PID" 2>/dev/null && fail "gateway still running after the child died"
  wait "$SERVER_PID" && code=0 || code=$?
  [ "$code" -ne 0 ] || fail "gateway exited 0 after the child died"
  pass "child killed, gateway exited with $code"
  exit 0
fi
wait_code "$BASE/api/readyz" 503 10 || fail "readiness never turned 503 after the kill"
[ "$(http_code "$BASE/api/healthz")" = 200 ] || fail "healthz failed while the child was down"
wait_code "$BASE/api/readyz" 200 "${TIMEOUT_S:-60}" || fail "readiness did not come back"
[ "$(child_pid)" != "$victim" ] || fail "child pid unchanged"
pass "child $victim killed; restarted as $(child_pid); gateway kept answering"
