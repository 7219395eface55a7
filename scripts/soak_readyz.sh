#!/usr/bin/env bash
# GET BASE_URL/api/readyz COUNT times in a row, counting 503s instead of stopping at them (probe flakiness).
# REQUIRE_2XX=1 (default) exits 1 if any answer is not 2xx; REQUIRE_2XX=0 only reports the status histogram.
SOAK_NAME=soak_readyz
source "$(dirname "$0")/_soak_lib.sh"
PATH_SUFFIX="${PATH_SUFFIX:-/api/readyz}"
REQUIRE_2XX="${REQUIRE_2XX:-1}"
soak_check_env
case "$REQUIRE_2XX" in 0 | 1) ;; *) usage_error "REQUIRE_2XX='$REQUIRE_2XX' must be 1 or 0" ;; esac

accept() { is_2xx "$1"; }

URL="$BASE_URL$PATH_SUFFIX"
soak_run "$URL" accept
soak_report "$URL"
[ "$REQUIRE_2XX" = 0 ] || [ "$SOAK_FAIL" -eq 0 ]
