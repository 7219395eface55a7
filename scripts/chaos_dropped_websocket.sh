#!/usr/bin/env bash
# Open /_stcore/stream through the gateway, then drop the TCP connection mid-session: the gateway stays healthy.
source "$(dirname "$0")/_lib.sh"
start_server
wait_code "$BASE/api/readyz" 200 60 || fail "not ready"
"$PYTHON" - "$PORT" <<'PY' || fail "could not open the WebSocket"
import socket, sys
from websockets.sync.client import connect
ws = connect(f"ws://127.0.0.1:{sys.argv[1]}/_stcore/stream", subprotocols=["streamlit"], open_timeout=10)
ws.socket.shutdown(socket.SHUT_RDWR)  # vanish without a close frame
ws.socket.close()
PY
sleep 1
[ "$(http_code "$BASE/api/healthz")" = 200 ] || fail "healthz failed after the drop"
[ "$(http_code "$BASE/api/readyz")" = 200 ] || fail "readyz failed after the drop"
[ "$(http_code "$BASE/_stcore/health")" = 200 ] || fail "Streamlit unreachable after the drop"
pass "dropped WebSocket; gateway and Streamlit healthy"
