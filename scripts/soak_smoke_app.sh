#!/usr/bin/env bash
# Start the canonical smoke app (metrics on) on a free loopback port, wait for readiness, then run soak_readyz.sh
# and soak_metrics.sh against it; the server is stopped by its PID on every exit. COUNT defaults to 30.
# Used by the soak workflows (.github/workflows/soak-scheduled.yml, soak-fluxlit-dispatch.yml).
source "$(dirname "$0")/_lib.sh"
start_server --metrics
wait_code "$BASE/api/readyz" 200 60 || fail "the smoke app never became ready on $BASE"
status=0
COUNT="${COUNT:-30}" BASE_URL="$BASE" "$ROOT/scripts/soak_readyz.sh" || status=1
COUNT="${COUNT:-30}" BASE_URL="$BASE" "$ROOT/scripts/soak_metrics.sh" || status=1
exit "$status"
