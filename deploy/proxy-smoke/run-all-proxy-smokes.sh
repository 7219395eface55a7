#!/usr/bin/env bash
# Run smoke-test.sh against every site of the kit (root, full path, strip prefix, TLS); exit 1 if any fails.
#   ./run-all-proxy-smokes.sh                 build and start the compose project, check every site, stop it
#   ./run-all-proxy-smokes.sh --no-compose    check sites that are already running (e.g. after `up --wait`)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
COMPOSE=(docker compose -f "$HERE/docker-compose.yml")
if [ "${1:-}" != "--no-compose" ]; then
  "${COMPOSE[@]}" up --build --detach --wait
  trap '"${COMPOSE[@]}" down --volumes' EXIT
fi
failed=()
run() {  # run NAME URL PREFIX [ENV=VALUE...]
  local name=$1 url=$2 prefix=$3
  shift 3
  echo "== $name: $url$prefix"
  env "$@" "$HERE/smoke-test.sh" "$url" "$prefix" || failed+=("$name")
}
run root http://127.0.0.1:8080 ""
run full-path http://127.0.0.1:8081 /apps/my-app
run strip-prefix http://127.0.0.1:8083 /apps/my-app
run tls https://127.0.0.1:8444 "" CURL_INSECURE=1
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed sites: ${failed[*]}"
  exit 1
fi
echo "every site passed"
