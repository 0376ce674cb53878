#!/usr/bin/env bash
# The original's cluster table, measured: dm-bench through nginx against a
# local cluster (scripts/cluster.sh) of 1, 3 and 5 nodes on MariaDB primary +
# replica and Redis, for the cached player read and the mixed scenario; then
# the cost of the cluster features on one node (the same node with and
# without `cluster.redis`, direct, alternating runs). Prints a Markdown
# section and appends it to bench/RESULTS.md unless BENCH_NO_WRITE=1.
#
# Everything runs on this machine's cores: nodes, nginx, MariaDB, Redis and
# the load generator share them, so the table shows how the software scales
# when the hardware does not — see README "Running a cluster".
# Settings: DURATION (10 s per run), WARMUP (2 s), CONNS (64), NODES ("1 3 5"),
# ROUNDS (3: with/without cluster.redis runs per scenario, alternating).
# Loopback only; every run is bounded by DURATION + WARMUP seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_tools
command -v python3 >/dev/null 2>&1 || apt_install python3

DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CONNS="${CONNS:-64}"
NODES="${NODES:-1 3 5}"
ROUNDS="${ROUNDS:-3}"
export DMC_DIR="${DMC_DIR:-/tmp/dm-bench-cluster}"
export DMC_HTTP_PORT=28080 DMC_TCP_PORT=29090 DMC_REDIS_DB=4 DMC_DATABASE=dmc_bench
WORK=$(mktemp -d /tmp/dm-bench-cluster.XXXXXX)
ulimit -n 65536 2>/dev/null || true

cargo build --release --bins >&2
export DMC_BIN=$PWD/target/release/datamiddleware
BENCH=target/release/dm-bench

cleanup() {
  scripts/cluster.sh stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# dm-bench against $1 (host:port), scenario $2; prints its JSON.
bench() {
  "$BENCH" --http "$1" --scenario "$2" -c "$CONNS" --duration "$DURATION" --warmup "$WARMUP" \
    --server-key "$DMC_SERVER_KEY" --json
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

# The cost of the cluster features: one node, direct (no nginx), the same
# binary and config with and without cluster.redis, runs alternating so
# that the machine's drift hits both alike; medians compared.
scripts/cluster.sh stop >/dev/null 2>&1 || true
COST=()
for S in player mixed; do
  WITH=() WITHOUT=()
  for ((r = 1; r <= ROUNDS; r++)); do
    for MODE in with without; do
      scripts/cluster.sh stop >/dev/null 2>&1 || true
      if [ "$MODE" = with ]; then
        scripts/cluster.sh start 1 >&2
      else
        DM_CLUSTER_REDIS="" scripts/cluster.sh start 1 >&2
      fi
      eval "$(scripts/cluster.sh env)"
      Q=$(bench "$DMC_NODE1_HTTP" "$S" | field "round(d['qps'])")
      if [ "$MODE" = with ]; then WITH+=("$Q"); else WITHOUT+=("$Q"); fi
    done
  done
  COST+=("$S|${WITH[*]}|${WITHOUT[*]}")
done

DATE=$(date -u +%Y-%m-%dT%H:%MZ)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
{
  echo "## Cluster $DATE — commit $COMMIT, $CORES cores, $(uname -r)"
  echo
  echo "Command: \`DURATION=$DURATION CONNS=$CONNS NODES=\"$NODES\" ROUNDS=$ROUNDS scripts/bench-cluster.sh\`."
  echo "All on one machine of $CORES cores: every node, nginx (\`worker_processes auto\`), MariaDB primary + replica,"
  echo "Redis and dm-bench (-c$CONNS, through nginx) share them. The original's figures are its claims for separate machines."
  echo
  echo "| nodes | shards each | scenario | QPS | p50 ms | p99 ms | errors | the original's claim |"
  echo "|---|---|---|---|---|---|---|---|"
  for R in "${ROWS[@]}"; do
    IFS='|' read -r N SH S Q P50 P99 E <<<"$R"
    case "$N" in 1) CLAIM="3,000+" ;; 3) CLAIM="8,000+" ;; 5) CLAIM="15,000+" ;; 10) CLAIM="25,000+" ;; *) CLAIM="—" ;; esac
    echo "| $N | $SH | $S | $Q | $P50 | $P99 | $E | $CLAIM |"
  done
  echo
  echo "Cost of the cluster features (one node, direct, \`cluster.redis\` set vs empty; $ROUNDS alternating runs each, QPS):"
  echo
  echo "| scenario | with cluster.redis | without | ratio of medians |"
  echo "|---|---|---|---|"
  for C in "${COST[@]}"; do
    IFS='|' read -r S W WO <<<"$C"
    RATIO=$(python3 -c "
import statistics as s
w = [float(x) for x in '$W'.split()]; wo = [float(x) for x in '$WO'.split()]
print(f'{s.median(w) / s.median(wo):.3f}')")
    echo "| $S | ${W// / / } | ${WO// / / } | $RATIO |"
  done
  echo
} | tee "$WORK/section.md"
if [ "${BENCH_NO_WRITE:-0}" != 1 ]; then
  cat "$WORK/section.md" >>bench/RESULTS.md
fi
