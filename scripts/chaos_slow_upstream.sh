#!/usr/bin/env bash
# A stalled Streamlit (SIGSTOP) with a short read timeout: proxied requests get 504, not a hang; SIGCONT recovers.
source "$(dirname "$0")/_lib.sh"
FLUXLIT_GATEWAY_UPSTREAM_READ_TIMEOUT_S="${READ_TIMEOUT_S:-0.5}" start_server
wait_code "$BASE/api/readyz" 200 60 || fail "not ready"
child=$(child_pid)
kill -STOP "$child"
code=$(http_code "$BASE/_stcore/health" 10)
kill -CONT "$child"
[ "$code" = 504 ] || fail "stalled upstream answered $code, expected 504"
wait_code "$BASE/api/readyz" 200 30 || fail "did not recover after SIGCONT"
pass "stalled upstream → 504; recovered after SIGCONT"
