#!/usr/bin/env bash
# Serve the canonical smoke app (examples/smoke_app) on HOST:PORT (default 127.0.0.1:8000).
set -euo pipefail
cd "$(dirname "$0")/.."
exec fluxlit serve examples/smoke_app/app.py:app --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" "$@"
