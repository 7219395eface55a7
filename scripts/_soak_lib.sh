# Shared by the soak scripts: a sequential curl loop bounded by COUNT, then ok/fail, elapsed, p50/p95/p99 ms.
# shellcheck shell=bash
set -euo pipefail

COUNT="${COUNT:-200}"
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
BASE_URL="${BASE_URL%/}"
OUTPUT_FORMAT="${OUTPUT_FORMAT:-text}"
TIMEOUT_S="${TIMEOUT_S:-10}"

usage_error() { echo "$SOAK_NAME: $*" >&2; exit 2; }

soak_check_env() {
  command -v curl >/dev/null || usage_error "curl is required"
  [[ "$COUNT" =~ ^[1-9][0-9]*$ ]] || usage_error "COUNT='$COUNT' must be a whole number of requests, e.g. 200"
  case "$OUTPUT_FORMAT" in text | json | markdown) ;;
    *) usage_error "OUTPUT_FORMAT='$OUTPUT_FORMAT' must be text, json or markdown" ;;
  esac
}

now_s() { if [ -n "${EPOCHREALTIME:-}" ]; then echo "${EPOCHREALTIME/,/.}"; else date +%s; fi; }

# soak_run URL ACCEPT_FN: GET URL COUNT times, one after another. ACCEPT_FN CODE BODY_FILE decides ok (0) or fail.
# Leaves SOAK_OK, SOAK_FAIL, SOAK_ELAPSED, the per-request "code seconds" lines in $SOAK_SAMPLES.
soak_run() {
  local url="$1" accept="$2" body out code seconds started i
  SOAK_WORK="$(mktemp -d)"
  trap 'rm -rf "$SOAK_WORK"' EXIT
  SOAK_SAMPLES="$SOAK_WORK/samples"
  body="$SOAK_WORK/body"
  : >"$SOAK_SAMPLES"
  SOAK_OK=0 SOAK_FAIL=0
  started="$(now_s)"
  for ((i = 1; i <= COUNT; i++)); do
    # No curl -f: non-2xx answers are counted, not turned into curl errors. 000 means no answer at all.
    out="$(curl -s -o "$body" -w '%{http_code} %{time_total}' --max-time "$TIMEOUT_S" "$url" 2>/dev/null)" || true
    code="${out%% *}" seconds="${out##* }"
    [ -n "$code" ] && [ "$code" != "$out" ] || { code=000 seconds=0; }
    echo "$code $seconds" >>"$SOAK_SAMPLES"
    if "$accept" "$code" "$body"; then SOAK_OK=$((SOAK_OK + 1)); else SOAK_FAIL=$((SOAK_FAIL + 1)); fi
  done
  SOAK_ELAPSED="$(awk -v a="$started" -v b="$(now_s)" 'BEGIN { printf "%.3f", b - a }')"
}

is_2xx() { [[ "$1" =~ ^2[0-9][0-9]$ ]]; }

# Nearest-rank percentile of the latencies, in milliseconds.
percentile_ms() {
  awk '{ print $2 * 1000 }' "$SOAK_SAMPLES" | sort -n | awk -v p="$1" '
    { v[NR] = $1 }
    END { if (NR == 0) { print "0.0"; exit } r = int(p / 100 * NR); if (r < p / 100 * NR) r++; if (r < 1) r = 1
          printf "%.1f", v[r] }'
}

# "200=198 503=2", most frequent first.
code_histogram() { awk '{ n[$1]++ } END { for (c in n) print n[c], c }' "$SOAK_SAMPLES" | sort -k1,1nr -k2 | awk '{ printf "%s%s=%s", (NR > 1 ? " " : ""), $2, $1 }'; }

# soak_report URL: print the summary in OUTPUT_FORMAT.
soak_report() {
  local url="$1" p50 p95 p99 codes json_codes escaped
  p50="$(percentile_ms 50)" p95="$(percentile_ms 95)" p99="$(percentile_ms 99)"
  codes="$(code_histogram)"
  case "$OUTPUT_FORMAT" in
    text)
      echo "$SOAK_NAME: GET $url x$COUNT"
      echo "ok=$SOAK_OK fail=$SOAK_FAIL elapsed_s=$SOAK_ELAPSED p50_ms=$p50 p95_ms=$p95 p99_ms=$p99"
      echo "codes: $codes"
      ;;
    json)
      json_codes="$(echo "$codes" | awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); printf "%s\"%s\": %s", (i > 1 ? ", " : ""), kv[1], kv[2] } }')"
      escaped="$(printf '%s' "$url" | sed 's/\\/\\\\/g; s/"/\\"/g')"
      printf '{"script": "%s", "url": "%s", "count": %s, "ok": %s, "fail": %s, "elapsed_s": %s, ' \
        "$SOAK_NAME" "$escaped" "$COUNT" "$SOAK_OK" "$SOAK_FAIL" "$SOAK_ELAPSED"
      printf '"p50_ms": %s, "p95_ms": %s, "p99_ms": %s, "codes": {%s}}\n' "$p50" "$p95" "$p99" "$json_codes"
      ;;
    markdown)
      echo "| script | url | count | ok | fail | elapsed s | p50 ms | p95 ms | p99 ms | codes |"
      echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
      echo "| $SOAK_NAME | \`$url\` | $COUNT | $SOAK_OK | $SOAK_FAIL | $SOAK_ELAPSED | $p50 | $p95 | $p99 | $codes |"
      ;;
  esac
}
