#!/usr/bin/env bash
# Scrape BASE_URL+METRICS_PATH (default /__fluxlit/metrics) COUNT times in a row; every answer must be 2xx and
# hold fluxlit_gateway_requests_total (needs FLUXLIT_ENABLE_GATEWAY_PROMETHEUS_METRICS=1, the default).
SOAK_NAME=soak_metrics
source "$(dirname "$0")/_soak_lib.sh"
METRICS_PATH="${METRICS_PATH:-${PATH_SUFFIX:-/__fluxlit/metrics}}"
METRIC_NAME="${METRIC_NAME:-fluxlit_gateway_requests_total}"
soak_check_env

accept() { is_2xx "$1" && grep -qF -- "$METRIC_NAME" "$2"; }

URL="$BASE_URL$METRICS_PATH"
soak_run "$URL" accept
soak_report "$URL"
[ "$SOAK_FAIL" -eq 0 ]
