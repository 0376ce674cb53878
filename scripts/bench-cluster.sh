#!/usr/bin/env bash
# The original's cluster table, measured: dm-bench through nginx against a
# local cluster (scripts/cluster.sh) of 1, 3 and 5 nodes on MariaDB primary +
# replica and Redis, for the cached player read and the mixed scenario; then
# the cost of the cluster features on one node (two nodes side by side, with
# and without `cluster.redis`, loaded at the same time). Prints a Markdown
# section and appends it to bench/RESULTS.md unless BENCH_NO_WRITE=1.
#
# Everything runs on this machine's cores: nodes, nginx, MariaDB, Redis and
# the load generator share them, so the table shows how the software scales
# when the hardware does not — see README "Running a cluster".
# Settings: DURATION (10 s per run), WARMUP (2 s), CONNS (64), NODES ("1 3 5"),
# ROUNDS (3: paired with/without cluster.redis runs per scenario),
# COST_SCENARIOS ("player mixed"; NODES="" skips the table and measures only the cost),
# COMPARE ("features": the pair is with / without cluster.redis; "redis-cluster":
# the pair is the same node on a Redis Cluster (scripts/backends.sh cluster-start,
# started here) / on the single Redis, for cache.redis and cluster.redis both).
# Loopback only; every run is bounded by DURATION + WARMUP seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_tools
command -v python3 >/dev/null 2>&1 || apt_install python3

DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CONNS="${CONNS:-64}"
NODES="${NODES-1 3 5}"
ROUNDS="${ROUNDS:-3}"
COMPARE="${COMPARE:-features}"
case "$COMPARE" in
  features) WITH="with cluster.redis"; WITHOUT="without" ;;
  redis-cluster)
    bash scripts/backends.sh start >&2
    bash scripts/backends.sh cluster-start >&2
    eval "$(bash scripts/backends.sh cluster-env)"
    WITH="on a Redis Cluster"; WITHOUT="on one Redis" ;;
  *) echo "COMPARE must be features or redis-cluster" >&2; exit 2 ;;
esac
export DMC_DIR="${DMC_DIR:-/tmp/dm-bench-cluster}"
export DMC_HTTP_PORT=28080 DMC_TCP_PORT=29090 DMC_REDIS_DB=4 DMC_DATABASE=dmc_bench
WORK=$(mktemp -d /tmp/dm-bench-cluster.XXXXXX)
ulimit -n 65536 2>/dev/null || true

cargo build --release --bins >&2
export DMC_BIN=$PWD/target/release/datamiddleware
BENCH=target/release/dm-bench

pair() { # with|without, then a cluster.sh command
  local mode=$1; shift
  if [ "$mode" = with ] && [ "$COMPARE" = redis-cluster ]; then
    DM_CACHE_REDIS=$DMTEST_REDIS_CLUSTER DM_CLUSTER_REDIS=$DMTEST_REDIS_CLUSTER \
      DMC_DIR=$DMC_DIR-with DMC_HTTP_PORT=28180 DMC_TCP_PORT=29190 DMC_REDIS_DB=6 \
      DMC_DATABASE=dmc_bench_with DMC_SHARDS=1 scripts/cluster.sh "$@"
  elif [ "$mode" = with ]; then
    DMC_DIR=$DMC_DIR-with DMC_HTTP_PORT=28180 DMC_TCP_PORT=29190 DMC_REDIS_DB=6 \
      DMC_DATABASE=dmc_bench_with DMC_SHARDS=1 scripts/cluster.sh "$@"
  elif [ "$COMPARE" = redis-cluster ]; then
    DMC_DIR=$DMC_DIR-without DMC_HTTP_PORT=28280 DMC_TCP_PORT=29290 \
      DMC_REDIS_DB=7 DMC_DATABASE=dmc_bench_without DMC_SHARDS=1 scripts/cluster.sh "$@"
  else
    DM_CLUSTER_REDIS="" DMC_DIR=$DMC_DIR-without DMC_HTTP_PORT=28280 DMC_TCP_PORT=29290 \
      DMC_REDIS_DB=7 DMC_DATABASE=dmc_bench_without DMC_SHARDS=1 scripts/cluster.sh "$@"
  fi
}
cleanup() {
  scripts/cluster.sh stop >/dev/null 2>&1 || true
  pair with stop >/dev/null 2>&1 || true
  pair without stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# dm-bench against $1 (host:port), scenario $2, more dm-bench arguments; prints its JSON.
bench() {
  local addr=$1 scenario=$2; shift 2
  "$BENCH" --http "$addr" --scenario "$scenario" -c "$CONNS" --duration "$DURATION" \
    --warmup "$WARMUP" --server-key "$DMC_SERVER_KEY" --json "$@"
}

CORES=$(nproc)
ROWS=()
for N in $NODES; do
  scripts/cluster.sh stop >/dev/null 2>&1 || true
  scripts/cluster.sh start "$N" >&2
  eval "$(scripts/cluster.sh env)"
  SHARDS=$(grep -m1 '^shards' "$DMC_DIR/node-1.toml" | tr -dc 0-9)
  for S in player mixed; do
    J=$(bench "$DMC_HTTP" "$S")
    ROWS+=("$N|$SHARDS|$S|$(echo "$J" | field "f\"{d['qps']:.0f}|{d['latency_ms']['p50']:.2f}|{d['latency_ms']['p99']:.2f}|{sum(d['errors'].values())}\"")")
  done
done

# The cost of the cluster features: two single-shard nodes side by side,
# the same binary and template, one with cluster.redis and one without (each
# with its own database and Redis database), loaded at the same time by one
# dm-bench each, directly. Whatever else the machine does hits both alike,
# so the ratio of their throughputs in the same run is what the cluster
# features cost; the median over ROUNDS runs is reported.
scripts/cluster.sh stop >/dev/null 2>&1 || true
pair with start 1 >&2
pair without start 1 >&2
COST=()
for S in ${COST_SCENARIOS:-player mixed}; do
  RUNS=()
  for ((r = 1; r <= ROUNDS; r++)); do
    pair with env >"$WORK/with.env"
    pair without env >"$WORK/without.env"
    (source "$WORK/with.env" && bench "$DMC_NODE1_HTTP" "$S" --threads 1 >"$WORK/with.json") &
    P1=$!
    (source "$WORK/without.env" && bench "$DMC_NODE1_HTTP" "$S" --threads 1 >"$WORK/without.json") &
    P2=$!
    wait "$P1" || { echo "dm-bench against the node $WITH failed" >&2; exit 1; }
    wait "$P2" || { echo "dm-bench against the node $WITHOUT failed" >&2; exit 1; }
    RUNS+=("$(field "round(d['qps'])" <"$WORK/with.json")/$(field "round(d['qps'])" <"$WORK/without.json")")
  done
  COST+=("$S|${RUNS[*]}")
done

DATE=$(date -u +%Y-%m-%dT%H:%MZ)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
{
  echo "## Cluster $DATE — commit $COMMIT, $CORES cores, $(uname -r)"
  echo
  echo "Command: \`DURATION=$DURATION CONNS=$CONNS NODES=\"$NODES\" ROUNDS=$ROUNDS COST_SCENARIOS=\"${COST_SCENARIOS:-player mixed}\" COMPARE=$COMPARE scripts/bench-cluster.sh\`."
  echo "All on one machine of $CORES cores: every node, nginx (\`worker_processes auto\`), MariaDB primary + replica,"
  echo "Redis and dm-bench (-c$CONNS, through nginx) share them. The original's figures are its claims for separate machines."
  echo
  [ ${#ROWS[@]} -gt 0 ] && echo "| nodes | shards each | scenario | QPS | p50 ms | p99 ms | errors | the original's claim |"
  [ ${#ROWS[@]} -gt 0 ] && echo "|---|---|---|---|---|---|---|---|"
  for R in "${ROWS[@]}"; do
    IFS='|' read -r N SH S Q P50 P99 E <<<"$R"
    case "$N" in 1) CLAIM="3,000+" ;; 3) CLAIM="8,000+" ;; 5) CLAIM="15,000+" ;; 10) CLAIM="25,000+" ;; *) CLAIM="—" ;; esac
    echo "| $N | $SH | $S | $Q | $P50 | $P99 | $E | $CLAIM |"
  done
  echo
  echo "Cost: two single-shard nodes side by side, one $WITH and one $WITHOUT,"
  echo "loaded at the same time (dm-bench -c$CONNS each, directly); QPS ($WITH / $WITHOUT) in each of $ROUNDS runs:"
  echo
  echo "| scenario | runs ($WITH / $WITHOUT) | median ratio |"
  echo "|---|---|---|"
  for C in "${COST[@]}"; do
    IFS='|' read -r S RUNS <<<"$C"
    RATIO=$(python3 -c "
import statistics as s
print(f\"{s.median(float(a) / float(b) for a, b in (r.split('/') for r in '$RUNS'.split())):.3f}\")")
    echo "| $S | ${RUNS// /, } | $RATIO |"
  done
  echo
} | tee "$WORK/section.md"
if [ "${BENCH_NO_WRITE:-0}" != 1 ]; then
  cat "$WORK/section.md" >>bench/RESULTS.md
fi
