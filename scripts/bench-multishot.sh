#!/usr/bin/env bash
# Issue 29: the server with node.multishot_recv on and off (same binary,
# alternating, ROUNDS rounds) on GET /health with wrk -t1 -cCONNS: requests/s,
# system calls and context switches per request (perf stat on the server's
# pid while wrk runs), and the server's VmRSS with IDLE idle binary-TCP
# connections open. Loopback only; about ROUNDS x 2 x (3 x DURATION + 15) s.
set -euo pipefail
cd "$(dirname "$0")/.."
HTTP_PORT=${MS_HTTP_PORT:-18297}
TCP_PORT=${MS_TCP_PORT:-19297}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
IDLE=${IDLE:-10000}
BIN=${SERVER_BIN:-$PWD/target/release/datamiddleware}
WORK=$(mktemp -d /tmp/dm-ms.XXXXXX)
ulimit -n 65536 2>/dev/null || true
PID=""
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; fi; }
trap 'stop; rm -rf "$WORK"' EXIT
start() { # multishot (true|false)
  (cd "$WORK" && exec env DM_NODE_MULTISHOT_RECV="$1" DM_HTTP_LISTEN=127.0.0.1:$HTTP_PORT \
    DM_TCP_LISTEN=127.0.0.1:$TCP_PORT DM_TCP_MAX_CONNECTIONS=100000 DM_TCP_IDLE_TIMEOUT_S=600 \
    DM_LOG_LEVEL=warn DM_AUTH_JWT_SECRET=0123456789abcdef0123456789abcdef0123456789abcdef \
    "$BIN" >>"$WORK/server.log" 2>&1) &
  PID=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$HTTP_PORT/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$HTTP_PORT/health" >/dev/null 2>&1
}
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
EV=context-switches,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto
for round in $(seq 1 "$ROUNDS"); do
  order="true false"
  [ $((round % 2)) = 0 ] && order="false true"
  for ms in $order; do
    start "$ms"
    qps=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$HTTP_PORT/health" | awk '/Requests\/sec/ {print $2}')
    perf stat -x, -e "$EV" -p "$PID" -o "$WORK/perf" -- sleep "$DURATION" &
    PERF=$!
    reqs=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$HTTP_PORT/health" | awk '/requests in/ {print $1}')
    wait "$PERF" || true
    counts=$(awk -F, '/^[0-9]/ {printf "%s=%s ", $3, $1}' "$WORK/perf")
    before=$(rss)
    python3 - "$TCP_PORT" "$IDLE" "$PID" "$before" <<'PY' >"$WORK/idle"
import socket, sys, time
port, n, pid, before = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
socks = []
for _ in range(n):
    s = socket.socket(); s.connect(("127.0.0.1", port)); socks.append(s)
time.sleep(3)
rss = int([l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0])
print(f"{len(socks)} {rss} {(rss - before) * 1024 / len(socks):.0f}")
PY
    echo "round=$round multishot=$ms qps=$qps perf_requests=$reqs $counts idle=$(cat "$WORK/idle") rss_before_kb=$before"
    stop
  done
done
