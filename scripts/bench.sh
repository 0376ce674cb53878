#!/usr/bin/env bash
# One command for the performance figures (BACKEND=mysql: the game on
# MariaDB + Redis, plus the database-direct line): builds release, starts nginx
# serving a static `return 200` JSON (the physical-limit baseline) and the
# server on its embedded default (SQLite, no Redis), runs wrk and dm-bench
# against both in the same run, and prints a Markdown section (also appended
# to bench/RESULTS.md unless BENCH_NO_WRITE=1; BENCH_JSON=FILE also writes
# every row as JSON). Loopback only; every run is bounded by DURATION seconds
# (default 10) plus warm-up. Every dm-bench row against the server also says
# what the server process itself spent per request (CPU µs, context
# switches: dm-bench --server-pid).
#   SERVER_BIN=PATH   run that server binary instead of this tree's
#                     target/release/datamiddleware (dm-bench is still built
#                     from this tree): two commits A/B in one session;
#                     SERVER_LABEL=... names it (e.g. its commit) in the header.
#   MIXED_RATE=N      (BACKEND=mysql) mixed's open-loop row offered N/s
#                     instead of half the sql-direct rate of this run, so that
#                     runs of an A/B session offer exactly the same load.
#   BENCH_PIN=1       (BACKEND=mysql) the server on CPU 0, MariaDB, Redis and
#                     the load generators on CPU 1; MariaDB's and Redis's
#                     previous CPU masks are restored at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_tools
command -v nginx >/dev/null 2>&1 && command -v wrk >/dev/null 2>&1 || apt_install nginx wrk

DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CONNS="${CONNS:-64}"
HTTP=127.0.0.1:18480
TCP=127.0.0.1:19480
NGINX=127.0.0.1:18490
ulimit -n 65536 2>/dev/null || true
CORES=$(nproc) # before BENCH_PIN pins this shell

BACKEND="${BACKEND:-sqlite}"
if [ "$BACKEND" != sqlite ] && [ "$BACKEND" != mysql ]; then
  echo "BACKEND must be sqlite (the embedded default) or mysql" >&2
  exit 2
fi
# BENCH_PIN=1: the server (and nginx, its baseline) on CPU 0, everything
# else (MariaDB, Redis, wrk, dm-bench) on CPU 1.
PIN=""
if [ "${BENCH_PIN:-0}" = 1 ]; then
  if [ "$BACKEND" != mysql ]; then
    echo "BENCH_PIN=1 needs BACKEND=mysql" >&2
    exit 2
  fi
  if [ "$CORES" -ge 2 ] && taskset -c 0 true 2>/dev/null && taskset -c 1 true 2>/dev/null; then
    PIN=1
  else
    echo "BENCH_PIN=1 skipped: pinning needs CPUs 0 and 1, this box lets us use $CORES CPU(s) ($(taskset -pc $$ 2>/dev/null | awk '{print $NF}')); running unpinned" >&2
  fi
fi
ON_SERVER_CPU=()
[ -n "$PIN" ] && ON_SERVER_CPU=(taskset -c 0)

cargo build --release --bins >&2
# SERVER_BIN: another build of the server (dm-bench stays this tree's).
if [ -n "${SERVER_BIN:-}" ]; then
  if [ ! -f "$SERVER_BIN" ] || [ ! -x "$SERVER_BIN" ]; then
    echo "SERVER_BIN=$SERVER_BIN is not an executable file" >&2
    exit 2
  fi
  BIN=$(realpath "$SERVER_BIN")
else
  BIN=$(realpath target/release/datamiddleware)
fi
require_free_port "$HTTP" "$TCP" "$NGINX"
BENCH=target/release/dm-bench

# Made after the checks above that exit (no trap yet to remove it).
WORK=$(mktemp -d /tmp/dm-bench.XXXXXX)
# BENCH_PIN: "pid mask" of every backend process pinned, to put back at exit.
PINNED=()
cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  local entry
  for entry in ${PINNED[@]+"${PINNED[@]}"}; do
    taskset -a -p "${entry#* }" "${entry%% *}" >/dev/null 2>&1 || true
  done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/nginx.conf" <<NGINX
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 16384; }
http {
  access_log off;
  keepalive_requests 100000000;
  server {
    listen $NGINX reuseport backlog=4096;
    location / { default_type application/json; return 200 '{"status":"ok"}'; }
  }
}
NGINX
${ON_SERVER_CPU[@]+"${ON_SERVER_CPU[@]}"} nginx -c "$WORK/nginx.conf"

# BACKEND=mysql: the game on MariaDB primary + replica and Redis from
# scripts/backends.sh (durable commits), in a database of its own; the table
# then gains the database-direct line (dm-bench --scenario sql-direct) and
# mixed in open loop at half its rate.
SQL_DIRECT=""
NODE_MIXED_OPEN=""
if [ "$BACKEND" = mysql ]; then
  bash scripts/backends.sh start >&2
  read -r PRIMARY_URL REPLICA_URL < <(bash scripts/backends.sh database dm_bench)
  export DM_GAMES_GAME1_URL="$PRIMARY_URL" DM_GAMES_GAME1_REPLICAS="[\"$REPLICA_URL\"]" \
    DM_GAMES_GAME1_DURABILITY=full DM_CACHE_REDIS=redis://127.0.0.1:16379/12 \
    DM_NODE_BLOCKING_THREADS=8 DM_GAMES_GAME1_POOL_SIZE=8 # as conf/production.example.toml
fi

if [ -n "$PIN" ]; then
  # Every mariadbd of scripts/backends.sh (primary and replica: all their
  # threads; new ones inherit the mask) and its Redis on CPU 1, as is this
  # shell, so wrk, dm-bench and the setup calls run there too.
  BACKENDS_DIR="${DMTEST_BACKENDS_DIR:-/tmp/dm-backends}"
  MARIADB_PIDS=()
  for pid in $(pgrep -f -- "--datadir=$BACKENDS_DIR/" || true); do
    case "$(cat "/proc/$pid/comm" 2>/dev/null)" in mariadbd | mysqld) MARIADB_PIDS+=("$pid") ;; esac
  done
  if [ "${#MARIADB_PIDS[@]}" -lt 2 ]; then
    echo "BENCH_PIN=1: expected the primary's and the replica's mariadbd under $BACKENDS_DIR, found ${#MARIADB_PIDS[@]}" >&2
    exit 1
  fi
  REDIS_PID=$(redis-cli -p 16379 info server | tr -d '\r' | awk -F: '/^process_id:/ {print $2}')
  if [ -z "$REDIS_PID" ]; then
    echo "BENCH_PIN=1: no Redis on 127.0.0.1:16379" >&2
    exit 1
  fi
  for pid in "${MARIADB_PIDS[@]}" "$REDIS_PID"; do
    mask=$(taskset -p "$pid" | awk '{print $NF}')
    PINNED+=("$pid $mask")
    taskset -a -p -c 1 "$pid" >/dev/null
  done
  taskset -p -c 1 $$ >/dev/null
  echo "pinned: the server and nginx on CPU 0; mariadbd ${MARIADB_PIDS[*]}, redis-server $REDIS_PID and the load generators on CPU 1 (their masks are put back at exit)" >&2
fi

# exec: $! is the server itself (taskset execs it too), not a subshell.
(cd "$WORK" && DM_HTTP_LISTEN=$HTTP DM_TCP_LISTEN=$TCP DM_LOG_LEVEL=warn \
  DM_AUTH_RATE_LIMIT_PER_IP_PER_MIN=2000000000 \
  exec ${ON_SERVER_CPU[@]+"${ON_SERVER_CPU[@]}"} "$BIN" >"$WORK/server.log" 2>&1) &
SERVER_PID=$!
for _ in $(seq 1 100); do curl -sf "http://$HTTP/health" >/dev/null 2>&1 && break; sleep 0.1; done
if [ "$(readlink "/proc/$SERVER_PID/exe" 2>/dev/null)" != "$BIN" ]; then
  echo "process $SERVER_PID is not $BIN (the server did not start?); see its log:" >&2
  cat "$WORK/server.log" >&2
  exit 1
fi

bench() { # args... -> JSON (against the server: its spending per request too)
  "$BENCH" --http "$HTTP" --tcp "$TCP" --duration "$DURATION" --warmup "$WARMUP" --json \
    --server-pid "$SERVER_PID" "$@"
}
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

echo "running (about $([ "$BACKEND" = mysql ] && echo 14 || echo 12) runs of ${DURATION}s)..." >&2
read -r NG_WRK NG_WRK_P50 NG_WRK_P99 NG_WRK_ERR < <(wrk_qps 2 "http://$NGINX/health")
read -r NODE_WRK NODE_WRK_P50 NODE_WRK_P99 NODE_WRK_ERR < <(wrk_qps 2 "http://$HTTP/health")
# The cached player read with wrk too (one seeded player, a game-server token).
TOKEN=$(curl -sf -XPOST "http://$HTTP/api/v1/auth/server" \
  -d '{"game_id":"game1","server_key":"dev-server-key-game1"}' | field "d['data']['token']")
curl -sf -XPOST "http://$HTTP/api/v1/players" -d '{"username":"wrkplayer","password":"wrk-password"}' >/dev/null || true
PLAYER_ID=$(curl -sf -XPOST "http://$HTTP/api/v1/auth/login" \
  -d '{"username":"wrkplayer","password":"wrk-password"}' | field "d['data']['player']['id']")
read -r NODE_WRK_PL NODE_WRK_PL_P50 NODE_WRK_PL_P99 NODE_WRK_PL_ERR < <(wrk_qps 2 "http://$HTTP/api/v1/players/$PLAYER_ID" \
  -H "Authorization: Bearer $TOKEN" -H "X-Game-Id: game1")
NG_BENCH=$("$BENCH" --http "$NGINX" --scenario health -c "$CONNS" --duration "$DURATION" --warmup "$WARMUP" --json --label nginx-static)
NODE_HEALTH=$(bench --scenario health -c "$CONNS")
NODE_PLAYER=$(bench --scenario player -c "$CONNS")
NODE_TCP_PLAYER=$(bench --scenario tcp-player -c "$CONNS")
NODE_PING=$(bench --scenario ping -c 8 --pipeline 16)
NODE_MIXED=$(bench --scenario mixed -c "$CONNS")
if [ "$BACKEND" = mysql ]; then
  # Not through the server: no --server-pid.
  SQL_DIRECT=$("$BENCH" --http "$HTTP" --duration "$DURATION" --warmup "$WARMUP" --json \
    --scenario sql-direct -c "$CONNS" --mysql "$PRIMARY_URL")
  # mixed offered a fixed load (half what the database alone did, or
  # MIXED_RATE), so that its p99 compares with another commit's at the same
  # offered load.
  if [ -n "${MIXED_RATE:-}" ]; then
    NODE_MIXED_OPEN=$(bench --scenario mixed -c "$CONNS" --rate "$MIXED_RATE" --label mixed-open-rate)
  else
    HALF_DIRECT=$(echo "$SQL_DIRECT" | field "max(1, int(d['qps']/2))")
    NODE_MIXED_OPEN=$(bench --scenario mixed -c "$CONNS" --rate "$HALF_DIRECT" --label mixed-open-half-direct)
  fi
fi
HALF=$(echo "$NODE_PLAYER" | field "int(d['qps']/2)")
NODE_OPEN=$(bench --scenario player -c "$CONNS" --rate "$HALF" --label "player-open-half")
NODE_LOGIN=$(bench --scenario login -c 16 --label login)
# Memory of 10,000 idle TCP connections.
RSS_BEFORE=$(awk '/VmRSS/ {print $2}' /proc/"$SERVER_PID"/status)
"$BENCH" --tcp "$TCP" --scenario idle-tcp -c 10000 --duration 6 --warmup 0 --json >"$WORK/idle.json" &
IDLE_PID=$!
sleep 5
RSS_IDLE=$(awk '/VmRSS/ {print $2}' /proc/"$SERVER_PID"/status)
wait "$IDLE_PID"
IDLE_OK=$(field "d['ok']" <"$WORK/idle.json")

DATE=$(date -u +%Y-%m-%dT%H:%MZ)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "${SERVER_BIN:-}" ]; then
  WHAT="server ${SERVER_LABEL:-(no SERVER_LABEL given)} (\`$SERVER_BIN\`), dm-bench from commit $COMMIT"
  ENV_ARGS="SERVER_BIN=$(printf %q "$SERVER_BIN")${SERVER_LABEL:+ SERVER_LABEL=$(printf %q "$SERVER_LABEL")} "
else
  WHAT="commit $COMMIT"
  ENV_ARGS=""
fi
if [ "$BACKEND" = mysql ] && [ -n "${MIXED_RATE:-}" ]; then
  ENV_ARGS="${ENV_ARGS}MIXED_RATE=$MIXED_RATE "
fi
if [ -n "$PIN" ]; then
  ENV_ARGS="${ENV_ARGS}BENCH_PIN=1 "
  WHERE="pinned: the server (and nginx) on CPU 0 (\`taskset -c 0\`), MariaDB primary + replica (every thread, \`taskset -a\`), Redis and the load generators on CPU 1 — dm-bench with one load thread"
else
  WHERE="load generator on the same $CORES cores"
fi
# The dm-bench rows (all but nginx-static and sql-direct against the server).
ROWS=("$NG_BENCH" "$NODE_HEALTH" "$NODE_PLAYER" "$NODE_TCP_PLAYER" "$NODE_PING" "$NODE_MIXED")
[ -n "$SQL_DIRECT" ] && ROWS+=("$SQL_DIRECT" "$NODE_MIXED_OPEN")
ROWS+=("$NODE_OPEN" "$NODE_LOGIN")
{
  echo "## $DATE — $WHAT, $CORES cores, $(uname -r)"
  echo
  if [ "$BACKEND" = mysql ]; then
    echo "Command: \`${ENV_ARGS}BACKEND=mysql DURATION=$DURATION CONNS=$CONNS scripts/bench.sh\` (server: the embedded default with game1 on MariaDB primary + replica and Redis from scripts/backends.sh, durable commits, blocking_threads = pool_size = 8; everything on loopback, $WHERE)."
  else
    echo "Command: \`${ENV_ARGS}DURATION=$DURATION CONNS=$CONNS scripts/bench.sh\` (server: embedded default, SQLite, no Redis; everything on loopback, $WHERE)."
  fi
  echo
  echo "| what | tool | QPS | p50 ms | p99 ms | errors | ratio | server CPU µs/req | ctx sw/req |"
  echo "|---|---|---|---|---|---|---|---|---|"
  echo "| nginx static return 200 | wrk -t2 -c$CONNS | $NG_WRK | $NG_WRK_P50 | $NG_WRK_P99 | $NG_WRK_ERR | baseline | – | – |"
  echo "| GET /health | wrk -t2 -c$CONNS | $NODE_WRK | $NODE_WRK_P50 | $NODE_WRK_P99 | $NODE_WRK_ERR | $(python3 -c "print(f'{$NODE_WRK/$NG_WRK:.2f}')") × nginx | – | – |"
  echo "| cached GET /api/v1/players/{id} | wrk -t2 -c$CONNS | $NODE_WRK_PL | $NODE_WRK_PL_P50 | $NODE_WRK_PL_P99 | $NODE_WRK_PL_ERR | $(python3 -c "print(f'{$NODE_WRK_PL/$NG_WRK:.2f}')") × nginx | – | – |"
  for J in "${ROWS[@]}"; do
    echo "$J" | NG="$(echo "$NG_BENCH" | field "d['qps']")" python3 -c '
import json, os, sys
d = json.load(sys.stdin); ng = float(os.environ["NG"])
mode = "open %.0f/s" % d["rate"] if d["rate"] else "-c%d pipeline %d" % (d["connections"], d["pipeline"])
cpu, sw = d.get("server_cpu_us_per_req"), d.get("ctx_switches_per_req")
print("| %s | dm-bench %s | %.0f | %.2f | %.2f | %d | %.2f × nginx, %.1f × 3,000 | %s | %s |" % (
    d["scenario"], mode, d["qps"], d["latency_ms"]["p50"], d["latency_ms"]["p99"],
    sum(d["errors"].values()), d["qps"] / ng, d["vs_original_target"],
    "–" if cpu is None else "%.1f" % cpu, "–" if sw is None else "%.2f" % sw))'
  done
  echo
  echo "dm-bench vs wrk on GET /health (same server, same run): $(echo "$NODE_HEALTH" | field "f\"{d['qps']/$NODE_WRK:.2f}\"")."
  if [ -n "$SQL_DIRECT" ]; then
    echo "mixed through the server vs the database-direct baseline (same transactions, same connections): $(echo "$NODE_MIXED" | field "f\"{d['qps']/$(echo "$SQL_DIRECT" | field "d['qps']"):.2f}\"") ×."
  fi
  echo "10,000 idle TCP connections ($IDLE_OK answered a Ping first): server RSS $((RSS_BEFORE/1024)) MiB before, $((RSS_IDLE/1024)) MiB with them open = $(( (RSS_IDLE-RSS_BEFORE)/10000 )) KiB per connection (budget 64 MiB + 4 KiB each: $(( 64 + 4*10000/1024 )) MiB)."
  echo
} | tee "$WORK/section.md"
if [ "${BENCH_NO_WRITE:-0}" != 1 ]; then
  cat "$WORK/section.md" >>bench/RESULTS.md
fi
# BENCH_JSON=FILE: every row of the table as JSON too (scenario, tool, qps,
# p50/p99 in ms, errors, ratio to nginx's static page in the same run, the
# server's CPU µs and context switches per request: null for wrk's rows and
# the rows not through the server).
if [ -n "${BENCH_JSON:-}" ]; then
  printf '%s\n' "nginx-static|$NG_WRK|$NG_WRK_P50|$NG_WRK_P99|$NG_WRK_ERR" \
    "health|$NODE_WRK|$NODE_WRK_P50|$NODE_WRK_P99|$NODE_WRK_ERR" \
    "player|$NODE_WRK_PL|$NODE_WRK_PL_P50|$NODE_WRK_PL_P99|$NODE_WRK_PL_ERR" >"$WORK/wrk.rows"
  for J in "${ROWS[@]}"; do
    echo "$J"
  done >"$WORK/bench.rows"
  python3 - "$WORK/wrk.rows" "$WORK/bench.rows" "$BENCH_JSON" <<'PY'
import json, sys
def ms(text):  # wrk's latency: 175.00us, 4.87ms, 1.02s
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)
wrk = [line.strip().split("|") for line in open(sys.argv[1]) if line.strip()]
nginx = float(wrk[0][1])
rows = [{"scenario": label, "tool": "wrk", "qps": float(q), "p50_ms": ms(p50), "p99_ms": ms(p99),
         "errors": int(e), "ratio": float(q) / nginx,
         "server_cpu_us_per_req": None, "ctx_switches_per_req": None} for label, q, p50, p99, e in wrk]
dm = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]
nginx_bench = dm[0]["qps"]
rows += [{"scenario": d["scenario"], "tool": "dm-bench", "qps": d["qps"],
          "p50_ms": d["latency_ms"]["p50"], "p99_ms": d["latency_ms"]["p99"],
          "errors": sum(d["errors"].values()), "ratio": d["qps"] / nginx_bench,
          "server_cpu_us_per_req": d.get("server_cpu_us_per_req"),
          "ctx_switches_per_req": d.get("ctx_switches_per_req")} for d in dm]
with open(sys.argv[3], "w") as f:
    json.dump(rows, f, indent=1)
    f.write("\n")
PY
  echo "rows written to $BENCH_JSON" >&2
fi
