#!/usr/bin/env bash
# GET BASE_URL+PATH_SUFFIX COUNT times in a row; fails (exit 1) on any non-2xx answer or, with
# REQUIRE_BODY_SUBSTRING set, any body without it. OUTPUT_FORMAT=text|json|markdown; p50/p95/p99 in ms.
SOAK_NAME=soak_http
source "$(dirname "$0")/_soak_lib.sh"
PATH_SUFFIX="${PATH_SUFFIX:-/api/healthz}"
REQUIRE_BODY_SUBSTRING="${REQUIRE_BODY_SUBSTRING:-}"
soak_check_env

accept() {  # accept CODE BODY_FILE
  is_2xx "$1" || return 1
  [ -z "$REQUIRE_BODY_SUBSTRING" ] || grep -qF -- "$REQUIRE_BODY_SUBSTRING" "$2"
}

URL="$BASE_URL$PATH_SUFFIX"
soak_run "$URL" accept
soak_report "$URL"
[ "$SOAK_FAIL" -eq 0 ]
