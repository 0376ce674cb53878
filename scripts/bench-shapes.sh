#!/usr/bin/env bash
# The two deployment shapes of the performance issue, each against nginx in
# the same run, as medians of ROUNDS alternating rounds:
#  1. Shared cores: wrk -t1 -c$CONNS (the load generator on one core, like
#     nginx or a game server on the same host) and wrk -t2 on GET /health of
#     nginx's static page (its default, unpinned workers), of the server with
#     node.pin = true, of the server with node.pin = false, and of the server
#     with node.sched_batch = true (the setting for shared cores).
#  2. Behind nginx: the shipped nginx config (scripts/cluster.sh nginx-config 1)
#     in front of one node (the shipped default of node.pin), against the same
#     config in front of an nginx static upstream answering the same paths with
#     the same bodies; wrk -t2 on GET /health and on the cached player read.
# Prints a Markdown section, also appended to bench/RESULTS.md unless
# BENCH_NO_WRITE=1. Loopback only; bounded by ROUNDS x about 12 runs of
# DURATION seconds (defaults 5 and 5: about 6 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_tools
# The shipped nginx config (scripts/cluster.sh nginx-config) loads the stream
# module, which Debian packages apart from nginx.
if ! command -v nginx >/dev/null 2>&1 || ! command -v wrk >/dev/null 2>&1 ||
  [ ! -e /usr/lib/nginx/modules/ngx_stream_module.so ]; then
  apt_install nginx libnginx-mod-stream wrk
fi

ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-5}"
CONNS="${CONNS:-64}"
# Ports: SHAPES_STATIC_PORT, SHAPES_FRONT_NODE_PORT and SHAPES_FRONT_STATIC_PORT
# move them (the shipped config's upstreams are the front's port + 1, their
# TCP ports + 1000), so two sessions on one machine do not collide.
STATIC=127.0.0.1:${SHAPES_STATIC_PORT:-18590} # nginx static, alone (shape 1)
FRONT_NODE_PORT=${SHAPES_FRONT_NODE_PORT:-18580} # shipped config -> the server
NODE_PORT=$((FRONT_NODE_PORT + 1)) # the server (shape 1 directly, shape 2 behind FRONT_NODE)
NODE_TCP_PORT=$((NODE_PORT + 1000))
FRONT_STATIC_PORT=${SHAPES_FRONT_STATIC_PORT:-18570}
UPSTREAM_STATIC=127.0.0.1:$((FRONT_STATIC_PORT + 1)) # shipped config -> this static nginx
WORK=$(mktemp -d /tmp/dm-shapes.XXXXXX)
ulimit -n 65536 2>/dev/null || true

cargo build --release --bins >&2
BIN=$PWD/target/release/datamiddleware
require_free_port "$STATIC" "$UPSTREAM_STATIC" 127.0.0.1:$FRONT_NODE_PORT 127.0.0.1:$FRONT_STATIC_PORT

SERVER_PID=""
# One secret for every start, so the token taken below stays valid.
JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
cleanup() {
  stop_server
  for pid in "$WORK"/*.pid "$WORK"/front-*/nginx/nginx.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# A stopped server's listeners can outlive it by a moment: io_uring tears a
# ring down in a kernel worker after the process exits, and the accept it had
# armed holds the listening socket until then (port_free: scripts/lib.sh).
start_server() { # pin (true|false) [sched_batch (true|false, default false)]
  stop_server
  for _ in $(seq 1 50); do
    port_free 127.0.0.1:$NODE_PORT && port_free 127.0.0.1:$NODE_TCP_PORT && break
    sleep 0.1
  done
  require_free_port 127.0.0.1:$NODE_PORT 127.0.0.1:$NODE_TCP_PORT
  (cd "$WORK" && exec env DM_NODE_PIN="$1" DM_NODE_SCHED_BATCH="${2:-false}" DM_HTTP_LISTEN=127.0.0.1:$NODE_PORT \
    DM_TCP_LISTEN=127.0.0.1:$NODE_TCP_PORT DM_LOG_LEVEL=warn DM_AUTH_JWT_SECRET="$JWT_SECRET" \
    DM_AUTH_RATE_LIMIT_PER_IP_PER_MIN=2000000000 "$BIN" >>"$WORK/server.log" 2>&1) &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    if curl -sf "http://127.0.0.1:$NODE_PORT/health" >/dev/null 2>&1; then
      # A second of load first: what start-up leaves running is done.
      wrk -t2 -c"$CONNS" -d1s "http://127.0.0.1:$NODE_PORT/health" >/dev/null 2>&1
      return 0
    fi
    sleep 0.1
  done
  echo "the server did not start: $(tail -5 "$WORK/server.log")" >&2
  exit 1
}

# The shipped default of node.pin (the embedded default configuration), and
# a cached player read to measure.
PIN_DEFAULT=$(awk '/^pin = / {print $3; exit}' conf/datamiddleware.toml)
case "$PIN_DEFAULT" in true | false) ;; *) echo "no node.pin in conf/datamiddleware.toml" >&2; exit 1 ;; esac
start_server "$PIN_DEFAULT"
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
API=http://127.0.0.1:$NODE_PORT/api/v1
TOKEN=$(curl -sf -XPOST "$API/auth/server" \
  -d '{"game_id":"game1","server_key":"dev-server-key-game1"}' | field "d['data']['token']")
curl -sf -XPOST "$API/players" -d '{"username":"shapes","password":"shapes-password"}' >/dev/null || true
PLAYER_ID=$(curl -sf -XPOST "$API/auth/login" \
  -d '{"username":"shapes","password":"shapes-password"}' | field "d['data']['player']['id']")
PLAYER_PATH=/api/v1/players/$PLAYER_ID
PLAYER_BODY=$(curl -sf "$API/players/$PLAYER_ID" -H "Authorization: Bearer $TOKEN")
HEALTH_BODY=$(curl -sf "http://127.0.0.1:$NODE_PORT/health")
case "$PLAYER_BODY$HEALTH_BODY" in *"'"* | *\\*) echo "bodies need escaping for nginx" >&2; exit 1 ;; esac

static_nginx() { # name listen
  cat >"$WORK/$1.conf" <<NGINX
worker_processes auto;
pid $WORK/$1.pid;
error_log $WORK/$1-error.log;
events { worker_connections 16384; }
http {
  access_log off;
  keepalive_requests 100000000;
  server {
    listen $2 reuseport backlog=4096;
    location / { default_type application/json; return 200 '$HEALTH_BODY'; }
    location /api/ { default_type application/json; return 200 '$PLAYER_BODY'; }
  }
}
NGINX
  nginx -c "$WORK/$1.conf"
}
static_nginx static "$STATIC"
static_nginx upstream-static "$UPSTREAM_STATIC"
front() { # name port
  local conf
  conf=$(DMC_DIR="$WORK/front-$1" DMC_HTTP_PORT="$2" DMC_TCP_PORT=$(($2 + 1000)) \
    bash scripts/cluster.sh nginx-config 1)
  nginx -t -c "$conf" 2>/dev/null || { nginx -t -c "$conf"; exit 1; }
  nginx -c "$conf"
}
front node "$FRONT_NODE_PORT"
front static "$FRONT_STATIC_PORT"

AUTH=(-H "Authorization: Bearer $TOKEN")
RESULTS=$WORK/results
: >"$RESULTS"
record() { # label threads url [wrk options...] -> a line "label qps p50 p99 errors"
  local label=$1
  shift
  echo "$label $(wrk_qps "$@")" >>"$RESULTS"
}

echo "running $ROUNDS rounds (about $((ROUNDS * 12 * DURATION / 60 + 1)) minutes)..." >&2
for round in $(seq 1 "$ROUNDS"); do
  # Shape 1, alternating which pinning goes first.
  order="true false"
  [ $((round % 2)) = 0 ] && order="false true"
  for t in 1 2; do record "nginx-t$t" "$t" "http://$STATIC/health"; done
  for pin in $order; do
    start_server "$pin"
    for t in 1 2; do record "pin-$pin-t$t" "$t" "http://127.0.0.1:$NODE_PORT/health"; done
  done
  # The setting for cores shared with one busy process (node.sched_batch).
  start_server false true
  for t in 1 2; do record "batch-t$t" "$t" "http://127.0.0.1:$NODE_PORT/health"; done
  # Shape 2, behind the shipped nginx config.
  start_server "$PIN_DEFAULT"
  curl -sf "http://127.0.0.1:$FRONT_NODE_PORT$PLAYER_PATH" "${AUTH[@]}" >/dev/null
  record behind-static-health 2 "http://127.0.0.1:$FRONT_STATIC_PORT/health"
  record behind-node-health 2 "http://127.0.0.1:$FRONT_NODE_PORT/health"
  record behind-node-player 2 "http://127.0.0.1:$FRONT_NODE_PORT$PLAYER_PATH" "${AUTH[@]}"
  record behind-static-player 2 "http://127.0.0.1:$FRONT_STATIC_PORT$PLAYER_PATH" "${AUTH[@]}"
  echo "round $round of $ROUNDS done" >&2
done
stop_server

CORES=$(nproc)
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
{
  echo "## $DATE — deployment shapes, commit $COMMIT, $CORES cores, $(uname -r)"
  echo
  echo "Command: \`ROUNDS=$ROUNDS DURATION=$DURATION CONNS=$CONNS scripts/bench-shapes.sh\` (the embedded default; medians of $ROUNDS alternating rounds, every figure beside its nginx baseline of the same rounds; shipped \`node.pin\` = $PIN_DEFAULT)."
  echo
  python3 - "$RESULTS" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, q, p50, p99, errors = line.split()
    runs.setdefault(label, []).append((float(q), p99, int(errors)))
def med(label):
    return statistics.median(q for q, _, _ in runs[label])
def cell(label):
    qs = sorted(q for q, _, _ in runs[label])
    errors = sum(e for _, _, e in runs[label])
    return f"{med(label):,.0f} ({qs[0]:,.0f}–{qs[-1]:,.0f}), errors {errors}"
print("| shape | what | median QPS (min–max) | ratio of medians |")
print("|---|---|---|---|")
for t in (1, 2):
    print(f"| shared cores, wrk -t{t} | nginx static /health | {cell(f'nginx-t{t}')} | baseline |")
    for pin in ("true", "false"):
        label = f"pin-{pin}-t{t}"
        print(f"| shared cores, wrk -t{t} | /health, node.pin = {pin} | {cell(label)} | {med(label) / med(f'nginx-t{t}'):.2f} × nginx |")
    print(f"| shared cores, wrk -t{t} | /health, node.pin = false, node.sched_batch = true | {cell(f'batch-t{t}')} | {med(f'batch-t{t}') / med(f'nginx-t{t}'):.2f} × nginx |")
for what in ("health", "player"):
    name = "/health" if what == "health" else "cached player read"
    print(f"| behind the shipped nginx, wrk -t2 | {name}, static nginx upstream | {cell(f'behind-static-{what}')} | baseline |")
    print(f"| behind the shipped nginx, wrk -t2 | {name}, one node | {cell(f'behind-node-{what}')} | {med(f'behind-node-{what}') / med(f'behind-static-{what}'):.2f} × |")
PY
  echo
} | tee "$WORK/section.md"
if [ "${BENCH_NO_WRITE:-0}" != 1 ]; then
  cat "$WORK/section.md" >>bench/RESULTS.md
fi
