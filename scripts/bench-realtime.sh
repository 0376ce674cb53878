#!/usr/bin/env bash
# The realtime figures (SPEC §11, bench/RESULTS.md "Issue 26: realtime"): builds
# release, then, on loopback,
#   one   one node on its embedded default (SQLite): ROUNDS runs of
#         `dm-bench --scenario ws -c SOCKETS --rate RATE` — the sockets and the
#         wallet credits on the same node; delivery latency, lost, duplicates;
#   two   two nodes (one shard each) sharing game1 on the MariaDB primary +
#         replica of scripts/backends.sh (database dm_ws_bench) and a Redis of
#         their own on 127.0.0.1:16480 for `cluster.redis` and the cache (Redis
#         pub/sub channels are shared by every database of a server: the test
#         suite's nodes on the shared Redis would get these notifications);
#         the sockets on node B (`--ws-addr`), the credits through node A;
#   idle  IDLE (10,000) idle authenticated sockets on one node (embedded
#         default, the players registered once, a fresh server per run):
#         `dm-bench --scenario idle-ws --server-pid` reads the server's VmRSS
#         before the sockets open and once they are all open; then, as a
#         reference, as many idle binary-protocol connections on another fresh
#         server (scripts/bench.sh's way: VmRSS before and 5 s into the run);
#   ab    with A_BIN=PATH (another build of the server, e.g. the commit before
#         a change): `mixed -c 64` against A_BIN and this tree's server, each
#         run on a fresh server with an empty data directory, AB_ROUNDS rounds
#         in the order AB, BA, AB, ...: B/A throughput per round and its
#         median, and each server's CPU µs per request (`--server-pid`).
# Every dm-bench report is kept as JSON in $OUT (default: a new
# /tmp/dm-bench-realtime.XXXXXX, printed at the end) and summed up in a table.
# Settings: PARTS ("one two idle", plus "ab" when A_BIN is set), ROUNDS (3),
# AB_ROUNDS (ROUNDS), DURATION (20 s), AB_DURATION (10 s), SOCKETS (1000),
# RATE (1000/s), WRITERS (16: HTTP connections making the credits), IDLE
# (10000).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_tools

ROUNDS="${ROUNDS:-3}"
AB_ROUNDS="${AB_ROUNDS:-$ROUNDS}"
DURATION="${DURATION:-20}"
SOCKETS="${SOCKETS:-1000}"
RATE="${RATE:-1000}"
WRITERS="${WRITERS:-16}"
IDLE="${IDLE:-10000}"
PARTS="${PARTS:-one two idle${A_BIN:+ ab}}"
HTTP=127.0.0.1:18580
TCP=127.0.0.1:19580
NODE_A=127.0.0.1:18680
NODE_B=127.0.0.1:18681
REDIS_PORT=16480
CORES=$(nproc)

# Every socket is a file on both sides; dm-bench raises its own soft limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((IDLE + 1000)) ]; then
  echo "open files limit $(ulimit -n) is too low for IDLE=$IDLE sockets (raise ulimit -n, or IDLE)" >&2
  exit 2
fi
has() { [[ " $PARTS " == *" $1 "* ]]; }
if has ab && { [ -z "${A_BIN:-}" ] || [ ! -x "$A_BIN" ]; }; then
  echo "PARTS has ab: A_BIN must name an executable server binary" >&2
  exit 2
fi

cargo build --release --bins >&2
BIN=$(realpath target/release/datamiddleware)
BENCH=$(realpath target/release/dm-bench)
require_free_port "$HTTP" "$TCP" "$NODE_A" "$NODE_B" "127.0.0.1:$REDIS_PORT"
OUT="${OUT:-$(mktemp -d /tmp/dm-bench-realtime.XXXXXX)}"
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/dm-realtime-work.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# start DIR BIN [args...]: the server in DIR (its data directory and log);
# its pid in $STARTED, waits until HTTP_ADDR answers /health.
start() {
  local dir=$1
  shift
  mkdir -p "$dir"
  (cd "$dir" && exec "$@" >server.log 2>&1) &
  STARTED=$!
  PIDS+=("$STARTED")
  for _ in $(seq 1 100); do curl -sf "http://$HTTP_ADDR/health" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "the server in $dir did not start; its log:" >&2
  cat "$dir/server.log" >&2
  exit 1
}
stop() { # pid
  kill "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
}
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# The embedded default, the per-address rate limit out of the way of one
# load generator.
embedded() { # dir bin
  HTTP_ADDR=$HTTP
  DM_HTTP_LISTEN=$HTTP DM_TCP_LISTEN=$TCP DM_LOG_LEVEL=warn \
    DM_AUTH_RATE_LIMIT_PER_IP_PER_MIN=2000000000 start "$1" "$2"
}
ws_row() { # label json-file -> a table row
  python3 - "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[2])); w = d["ws"]; l = d["latency_ms"]; s = w["from_send_ms"]
cpu = d.get("server_cpu_us_per_req")
print("| %s | %d/%d | %d | %.3f | %.3f | %.3f | %.3f | %.2f / %.2f / %.2f | %.2f / %.2f | %d | %d | %d | %s |" % (
    sys.argv[1], w["ready"], w["sockets"], w["credits"], l["p50"], l["p90"], l["p99"], l["max"],
    s["p50"], s["p99"], s["max"], w["credit_latency_ms"]["p50"], w["credit_latency_ms"]["p99"],
    w["before_answer"], w["lost"], w["duplicates"] + w["gaps"] + w["missed"] + w["unmatched"],
    "–" if cpu is None else "%.0f" % cpu))
PY
}
WS_HEADER="| run | sockets ready | credits | delivery p50 ms | p90 | p99 | max | from the send p50 / p99 / max ms | API p50 / p99 ms | before the answer | lost | duplicates, gaps, missed, unmatched | server CPU µs / notification |
|---|---|---|---|---|---|---|---|---|---|---|---|---|"
SECTION="$OUT/section.md"
: >"$SECTION"
say() { echo "$@" | tee -a "$SECTION"; }

say "## $(date -u +%Y-%m-%dT%H:%MZ) — realtime, commit $(git rev-parse --short HEAD), $CORES cores, $(uname -r)"
say
say "Command: \`${A_BIN:+A_BIN=$A_BIN AB_ROUNDS=$AB_ROUNDS }PARTS=\"$PARTS\" ROUNDS=$ROUNDS DURATION=$DURATION SOCKETS=$SOCKETS RATE=$RATE WRITERS=$WRITERS IDLE=$IDLE scripts/bench-realtime.sh\` (everything on loopback, load generator on the same $CORES cores; JSON in $OUT)."

if has one; then
  embedded "$WORK/one" "$BIN"
  pid=$STARTED
  say
  say "One node, embedded default (SQLite): \`dm-bench --scenario ws -c $SOCKETS --rate $RATE --ws-writers $WRITERS --duration $DURATION\`"
  say
  say "$WS_HEADER"
  for r in $(seq 1 "$ROUNDS"); do
    "$BENCH" --http "$HTTP" --scenario ws -c "$SOCKETS" --rate "$RATE" --ws-writers "$WRITERS" \
      --duration "$DURATION" --server-pid "$pid" --json >"$OUT/one-$r.json" 2>"$OUT/one-$r.err" || true
    say "$(ws_row "$r" "$OUT/one-$r.json")"
  done
  stop "$pid"
fi

if has two; then
  bash scripts/backends.sh start >&2
  read -r PRIMARY REPLICA < <(bash scripts/backends.sh database dm_ws_bench)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
    >"$WORK/redis.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  node_pids=()
  for n in a b; do
    if [ "$n" = a ]; then
      addr=$NODE_A tcp=127.0.0.1:19680
    else
      addr=$NODE_B tcp=127.0.0.1:19681
    fi
    mkdir -p "$WORK/$n"
    cat >"$WORK/$n/node.toml" <<TOML
default_game = "game1"
[node]
id = "ws-$n"
shards = 1
[http]
listen = "$addr"
[tcp]
listen = "$tcp"
[auth]
mode = "prod"
jwt_secret = "bench-realtime-jwt-secret-0123456789abcdef"
rate_limit_per_ip_per_min = 2000000000
[audit]
signing_key = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[cache]
redis = "redis://127.0.0.1:$REDIS_PORT/0"
[cluster]
redis = "redis://127.0.0.1:$REDIS_PORT/0"
[log]
level = "warn"
[games.game1]
name = "Game 1"
url = "$PRIMARY"
replicas = ["$REPLICA"]
server_key = "dev-server-key-game1"
pool_size = 8
max_replica_lag_ms = 1000
[[games.game1.items]]
item_id = "potion"
name = "Potion"
type = "consumable"
price_gold = 10
max_stack = 100000
TOML
    # One after the other: the first one migrates the database.
    HTTP_ADDR=$addr start "$WORK/$n" "$BIN" --config node.toml
    node_pids+=("$STARTED")
  done
  say
  say "Two nodes (one shard each; game1 on MariaDB primary + replica, durable commits; cluster and cache on a Redis of their own): sockets on node B, credits through node A: \`dm-bench --http $NODE_A --ws-addr $NODE_B --scenario ws -c $SOCKETS --rate $RATE --ws-writers $WRITERS --duration $DURATION --server-pid <node A>\`"
  say
  say "$WS_HEADER"
  for r in $(seq 1 "$ROUNDS"); do
    "$BENCH" --http "$NODE_A" --ws-addr "$NODE_B" --scenario ws -c "$SOCKETS" --rate "$RATE" \
      --ws-writers "$WRITERS" --duration "$DURATION" --server-pid "${node_pids[0]}" --json \
      >"$OUT/two-$r.json" 2>"$OUT/two-$r.err" || true
    say "$(ws_row "$r" "$OUT/two-$r.json")"
  done
  for pid in "${node_pids[@]}"; do stop "$pid"; done
fi

if has idle; then
  say
  say "$IDLE idle sockets on one node (embedded default, a fresh server per run, the players registered before the first): \`dm-bench --scenario idle-ws -c $IDLE --warmup 5 --duration 10 --server-pid <server>\`; then $IDLE idle binary-protocol connections on another fresh server (\`--scenario idle-tcp\`, VmRSS before and 5 s in)."
  say
  say "| run | sockets ready | server RSS before MiB | with the sockets MiB | KiB per socket | upgrade to ready p50 / p99 ms | idle TCP: KiB per connection |"
  say "|---|---|---|---|---|---|---|"
  # The players once (an argon2id hash each for registration and login).
  embedded "$WORK/idle" "$BIN"
  "$BENCH" --http "$HTTP" --scenario idle-ws -c "$IDLE" --warmup 5 --duration 1 --json \
    >"$OUT/idle-seed.json" 2>"$OUT/idle-seed.err" || true
  stop "$STARTED"
  for r in $(seq 1 "$ROUNDS"); do
    embedded "$WORK/idle" "$BIN"
    pid=$STARTED
    "$BENCH" --http "$HTTP" --scenario idle-ws -c "$IDLE" --warmup 5 --duration 10 --server-pid "$pid" \
      --json >"$OUT/idle-$r.json" 2>"$OUT/idle-$r.err" || true
    stop "$pid"
    rm -rf "$WORK/tcp"
    embedded "$WORK/tcp" "$BIN"
    pid=$STARTED
    sleep 1
    before=$(rss "$pid")
    "$BENCH" --tcp "$TCP" --scenario idle-tcp -c "$IDLE" --duration 6 --warmup 0 --json \
      >"$OUT/idle-tcp-$r.json" 2>/dev/null &
    load=$!
    sleep 5
    with=$(rss "$pid")
    wait "$load" || true
    stop "$pid"
    say "$(python3 - "$r" "$OUT/idle-$r.json" "$before" "$with" "$IDLE" "$OUT/idle-tcp-$r.json" <<'PY'
import json, sys
r, path, before, with_, n, tcp = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
d = json.load(open(path)); w = d["ws"]; m = w["server_rss_kib"]
t = json.load(open(tcp))
fmt = lambda v, f: "–" if v is None else f % v
print("| %s | %d/%d | %s | %s | %s | %.0f / %.0f | %.2f (%d answered a Ping) |" % (
    r, w["ready"], w["sockets"], fmt(m["before"] and m["before"] / 1024, "%.1f"),
    fmt(m["with_sockets"] and m["with_sockets"] / 1024, "%.1f"), fmt(m["per_socket"], "%.2f"),
    d["latency_ms"]["p50"], d["latency_ms"]["p99"], (with_ - before) / n, t["ok"]))
PY
)"
  done
fi

if has ab; then
  AB_DURATION="${AB_DURATION:-10}"
  say
  say "\`mixed -c 64 --duration $AB_DURATION --warmup 2 --server-pid <server>\` on the embedded default, a fresh server and data directory per run: A = \`$A_BIN\`, B = this tree's server."
  say
  say "| round | order | A QPS | B QPS | B/A | A p99 ms | B p99 ms | A CPU µs/req | B CPU µs/req |"
  say "|---|---|---|---|---|---|---|---|---|"
  declare -A AB_BIN=([A]=$(realpath "$A_BIN") [B]=$BIN)
  for r in $(seq 1 "$AB_ROUNDS"); do
    order="A B"
    [ $((r % 2)) = 0 ] && order="B A"
    for side in $order; do
      rm -rf "$WORK/ab"
      embedded "$WORK/ab" "${AB_BIN[$side]}"
      "$BENCH" --http "$HTTP" --tcp "$TCP" --scenario mixed -c 64 --duration "$AB_DURATION" --warmup 2 \
        --server-pid "$STARTED" --json --label "mixed-$side" >"$OUT/ab-$r-$side.json" 2>"$OUT/ab-$r-$side.err" || true
      stop "$STARTED"
    done
    say "$(python3 - "$OUT/ab-$r-A.json" "$OUT/ab-$r-B.json" "$r" "$order" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print("| %s | %s | %.0f | %.0f | %.3f | %.2f | %.2f | %.1f | %.1f |" % (
    sys.argv[3], sys.argv[4].replace(" ", ", "), a["qps"], b["qps"], b["qps"] / a["qps"],
    a["latency_ms"]["p99"], b["latency_ms"]["p99"], a["server_cpu_us_per_req"] or 0, b["server_cpu_us_per_req"] or 0))
PY
)"
  done
  say
  say "Median B/A: $(python3 - "$OUT" "$AB_ROUNDS" <<'PY'
import json, statistics, sys
out, n = sys.argv[1], int(sys.argv[2])
ab = [(json.load(open(f"{out}/ab-{r}-A.json")), json.load(open(f"{out}/ab-{r}-B.json"))) for r in range(1, n + 1)]
print("throughput %.3f, server CPU per request %.3f" % (
    statistics.median(b["qps"] / a["qps"] for a, b in ab),
    statistics.median((b["server_cpu_us_per_req"] or 0) / (a["server_cpu_us_per_req"] or 1) for a, b in ab)))
PY
)."
fi
say
echo "JSON reports and this section (section.md) in $OUT" >&2
