#!/usr/bin/env bash
# The leaderboard figures (SPEC §12: reads at 1,000,000 records per board,
# p99 <= 2 ms on a node). Builds release, then for each N in SIZES, on
# loopback, with one node on SQLite (a TOML config of its own in a temporary
# directory, durability normal as the embedded default, an admin account):
#   1. starts the server on an empty database so that its migrations run,
#      reads its VmRSS once ready, stops it;
#   2. bulk-loads players 1..=N and a record each on board `bench` (sort
#      desc, operator best, never resets) straight into the SQLite file:
#      `dm-bench lb-load` (the server stopped), timed;
#   3. starts the server again and times it from start to /ready (what it
#      rebuilds from SQL at start), reads its VmRSS;
#   4. runs `dm-bench --scenario lb-write` then `--scenario lb-read`
#      (players 1..=N drawn by Zipf, s = 1; reads 45 % one rank, 45 % around
#      a player with limit 11, 10 % the top 20), -c CONNS for DURATION
#      seconds each after a 2 s warm-up, with the server's CPU per request;
#      reads VmRSS again and stops the server.
# It prints a Markdown section: the load (seconds, players/s, database size),
# the start time with N records, VmRSS empty / loaded / after the runs and
# (loaded - empty) / N as memory per record, and a row per run (QPS,
# p50/p99/p99.9 ms, errors, server CPU µs per request). The section is also
# written to $OUT/section.md beside every dm-bench report as JSON ($OUT:
# a new /tmp/dm-bench-leaderboards.XXXXXX unless set).
# Settings: SIZES ("10000 1000000"), DURATION (20 s), CONNS (64),
# READY_TIMEOUT (300 s: the longest wait for /ready), LOAD_TIMEOUT (600 s:
# the longest bulk load), SERVER_BIN=PATH (another server binary; dm-bench
# is still this tree's). Everything listens on 127.0.0.1 only; every step
# is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_tools

SIZES="${SIZES:-10000 1000000}"
DURATION="${DURATION:-20}"
CONNS="${CONNS:-64}"
READY_TIMEOUT="${READY_TIMEOUT:-300}"
LOAD_TIMEOUT="${LOAD_TIMEOUT:-600}"
HTTP=127.0.0.1:18780
TCP=127.0.0.1:19780
BOARD=bench
ADMIN_PASSWORD=bench-admin-password-1
CORES=$(nproc)
for n in $SIZES; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "SIZES must be positive integers, got '$n'" >&2; exit 2; }
done
[[ "$DURATION" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "DURATION must be a number of seconds" >&2; exit 2; }

cargo build --release --bins >&2
if [ -n "${SERVER_BIN:-}" ]; then
  [ -f "$SERVER_BIN" ] && [ -x "$SERVER_BIN" ] || { echo "SERVER_BIN=$SERVER_BIN is not an executable file" >&2; exit 2; }
  BIN=$(realpath "$SERVER_BIN")
else
  BIN=$(realpath target/release/datamiddleware)
fi
BENCH=$(realpath target/release/dm-bench)
require_free_port "$HTTP" "$TCP"
OUT="${OUT:-$(mktemp -d /tmp/dm-bench-leaderboards.XXXXXX)}"
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/dm-lb-work.XXXXXX)
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
ADMIN_HASH=$(echo "$ADMIN_PASSWORD" | "$BIN" hash-password)

# config DIR: the node's TOML (the database at DIR/data/game1.db).
config() {
  cat >"$1/node.toml" <<TOML
default_game = "game1"
[node]
id = "lb-bench"
shutdown_grace_ms = 2000
[http]
listen = "$HTTP"
[tcp]
listen = "$TCP"
[auth]
mode = "dev"
rate_limit_per_ip_per_min = 2000000000
[log]
level = "warn"
[admins.ops]
password_hash = "$ADMIN_HASH"
[games.game1]
name = "Game 1"
url = "sqlite://data/game1.db"
server_key = "dev-server-key-game1"
durability = "normal"
TOML
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# start DIR: the server in DIR; its pid in SERVER_PID, the milliseconds
# from its start to /ready answering in READY_MS.
start() {
  local dir=$1 t0 deadline
  t0=$(now_ms)
  deadline=$((t0 + READY_TIMEOUT * 1000))
  (cd "$dir" && exec "$BIN" --config node.toml >>server.log 2>&1) &
  SERVER_PID=$!
  until "$BIN" probe --timeout-ms 500 "http://$HTTP/ready" >/dev/null 2>&1; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null || [ "$(now_ms)" -gt "$deadline" ]; then
      echo "the server in $dir was not ready within ${READY_TIMEOUT} s; its log:" >&2
      tail -n 40 "$dir/server.log" >&2
      exit 1
    fi
    sleep 0.05
  done
  READY_MS=$(($(now_ms) - t0))
}
stop() {
  kill "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "the server did not stop within 15 s; killing it" >&2
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
# VmRSS in KiB, a second after the call (what start-up allocated, settled).
rss() { sleep 1; awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }

SECTION="$OUT/section.md"
: >"$SECTION"
say() { echo "$@" | tee -a "$SECTION"; }
LOAD_ROWS=()
RUN_ROWS=()
for n in $SIZES; do
  dir="$WORK/n$n"
  mkdir -p "$dir"
  config "$dir"
  echo "== $n records: migrations" >&2
  start "$dir"
  rss_empty=$(rss)
  stop
  echo "== $n records: lb-load" >&2
  timeout "$LOAD_TIMEOUT" "$BENCH" lb-load --db "$dir/data/game1.db" --lb-players "$n" --board "$BOARD" \
    --json >"$OUT/load-$n.json"
  db_mib=$(du -sm "$dir/data" | awk '{print $1}')
  echo "== $n records: start with them" >&2
  start "$dir"
  ready_ms=$READY_MS
  rss_loaded=$(rss)
  for scenario in lb-write lb-read; do
    echo "== $n records: $scenario -c $CONNS for $DURATION s" >&2
    rc=0
    "$BENCH" --http "$HTTP" --scenario "$scenario" --board "$BOARD" --lb-players "$n" -c "$CONNS" \
      --duration "$DURATION" --warmup 2 --server-pid "$SERVER_PID" --json \
      >"$OUT/$scenario-$n.json" 2>"$OUT/$scenario-$n.err" || rc=$?
    # 2: the report is there, with more errors than --max-error-ratio.
    if [ "$rc" != 0 ] && [ "$rc" != 2 ]; then
      echo "dm-bench $scenario failed ($rc):" >&2
      cat "$OUT/$scenario-$n.err" >&2
      exit 1
    fi
    RUN_ROWS+=("$(python3 - "$n" "$scenario" "$OUT/$scenario-$n.json" <<'PY'
import json, sys
n, scenario, path = sys.argv[1:]
d = json.load(open(path)); l = d["latency_ms"]
errors = ", ".join("%s %d" % kv for kv in sorted(d["errors"].items())) or "0"
cpu = d.get("server_cpu_us_per_req")
print("| %s | %s | %.0f | %.3f | %.3f | %.3f | %.3f | %s | %s |" % (
    f"{int(n):,}", scenario, d["qps"], l["p50"], l["p90"], l["p99"], l["p99.9"], errors,
    "–" if cpu is None else "%.0f" % cpu))
PY
)")
  done
  rss_after=$(rss)
  stop
  LOAD_ROWS+=("$(python3 - "$n" "$OUT/load-$n.json" "$db_mib" "$ready_ms" "$rss_empty" "$rss_loaded" "$rss_after" <<'PY'
import json, sys
n, path, db, ready, empty, loaded, after = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
n = int(n); d = json.load(open(path))
print("| %s | %.2f | %.0f | %d | %d | %.1f | %.1f | %.1f | %.0f | %.0f |" % (
    f"{n:,}", d["seconds"], d["players_per_s"], db, ready, empty / 1024, loaded / 1024, after / 1024,
    (loaded - empty) * 1024 / n, (after - empty) * 1024 / n))
PY
)")
  rm -rf "$dir"
done

say "## $(date -u +%Y-%m-%dT%H:%MZ) — leaderboards, commit $(git rev-parse --short HEAD)${SERVER_BIN:+ (server $SERVER_BIN)}, $CORES cores, $(uname -r)"
say
say "Command: \`SIZES=\"$SIZES\" DURATION=$DURATION CONNS=$CONNS scripts/bench-leaderboards.sh\` (one node on SQLite, durability normal, one shard per core; everything on loopback, the load generator on the same $CORES cores; JSON in $OUT). Board \`$BOARD\`: sort desc, operator best, never resets; players 1..=N loaded by \`dm-bench lb-load\` with the server stopped, one record each."
say
say "| records | load s | players/s | database MiB | start to ready ms | RSS empty MiB | RSS loaded MiB | RSS after the runs MiB | bytes per record loaded | after the runs |"
say "|---|---|---|---|---|---|---|---|---|---|"
for row in "${LOAD_ROWS[@]}"; do say "$row"; done
say
say "\`dm-bench --scenario lb-write|lb-read --lb-players N -c $CONNS --duration $DURATION --warmup 2 --server-pid <server>\`: players drawn by Zipf (s = 1) over 1..=N; lb-write posts a random score (0 to 10^9), lb-read reads 45 % one rank, 45 % around a player (limit 11), 10 % the top 20."
say
say "| records | scenario | QPS | p50 ms | p90 ms | p99 ms | p99.9 ms | errors | server CPU µs / req |"
say "|---|---|---|---|---|---|---|---|---|"
for row in "${RUN_ROWS[@]}"; do say "$row"; done
say
echo "JSON reports and this section (section.md) in $OUT" >&2
