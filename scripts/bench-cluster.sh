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
# when the hardware does not — see docs/operations.md, "Running a cluster".
# Settings: DURATION (10 s per run), WARMUP (2 s), CONNS (64), NODES ("1 3 5"),
# ROUNDS (3: paired with/without cluster.redis runs per scenario),
# COST_SCENARIOS ("player mixed"; NODES="" skips the table and measures only the cost),
# COMPARE ("features": the pair is with / without cluster.redis; "redis-cluster":
# the pair is the same node on a Redis Cluster (scripts/backends.sh cluster-start,
# started here) / on the single Redis, for cache.redis and cluster.redis both).
# SIMULATE=1 gives each node a machine's share instead: every node runs in a
# cgroup of its own (scripts/cluster.sh DMC_CPU_QUOTA) with QUOTA CPUs (0.05)
# over a 20 ms period and MEMORY (256M) where the memory controller allows,
# one shard, CONNS_PER_NODE (16) connections per node through nginx; NODES
# defaults to "1 3 5 10" and the table adds the scaling efficiency
# QPS(N) / (N x QPS(1)) and RSS per node; the cost pair is skipped.
# BENCH_JSON=FILE (with SIMULATE=1) writes the rows as JSON (nodes, scenario,
# qps, p99_ms, efficiency, rss_mib_per_node).
# Loopback only; every run is bounded by DURATION + WARMUP seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_tools
command -v python3 >/dev/null 2>&1 || apt_install python3

DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CONNS="${CONNS:-64}"
SIMULATE="${SIMULATE:-0}"
if [ "$SIMULATE" = 1 ]; then
  NODES="${NODES-1 3 5 10}"
  export DMC_CPU_QUOTA="${QUOTA:-0.05}" DMC_MEMORY="${MEMORY:-256M}" DMC_SHARDS=1
  [ "$(id -u)" -eq 0 ] || { echo "SIMULATE=1 needs root (cgroups)" >&2; exit 1; }
else
  NODES="${NODES-1 3 5}"
fi
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
SIM_ROWS=()
# Average resident size of the cluster's nodes, MiB.
nodes_rss_mib() {
  local total=0 count=0 pid rss
  for f in "$DMC_DIR"/node-*.pid; do
    pid=$(cat "$f" 2>/dev/null) || continue
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
    [ -n "$rss" ] || continue
    total=$((total + rss)); count=$((count + 1))
  done
  [ "$count" -gt 0 ] && python3 -c "print(f'{$total / $count / 1024:.1f}')" || echo 0
}
for N in $NODES; do
  scripts/cluster.sh stop >/dev/null 2>&1 || true
  scripts/cluster.sh start "$N" >&2
  eval "$(scripts/cluster.sh env)"
  SHARDS=$(grep -m1 '^shards' "$DMC_DIR/node-1.toml" | tr -dc 0-9)
  for S in player mixed; do
    if [ "$SIMULATE" = 1 ]; then
      J=$(CONNS=$((${CONNS_PER_NODE:-16} * N)) bench "$DMC_HTTP" "$S")
      SIM_ROWS+=("$N|$S|$(echo "$J" | field "f\"{d['qps']:.0f}|{d['latency_ms']['p99']:.2f}|{sum(d['errors'].values())}\"")|$(nodes_rss_mib)")
    else
      J=$(bench "$DMC_HTTP" "$S")
      ROWS+=("$N|$SHARDS|$S|$(echo "$J" | field "f\"{d['qps']:.0f}|{d['latency_ms']['p50']:.2f}|{d['latency_ms']['p99']:.2f}|{sum(d['errors'].values())}\"")")
    fi
  done
done

if [ "$SIMULATE" = 1 ]; then
  scripts/cluster.sh stop >/dev/null 2>&1 || true
  DATE=$(date -u +%Y-%m-%dT%H:%MZ)
  COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  printf '%s\n' "${SIM_ROWS[@]}" >"$WORK/sim.rows"
  python3 - "$WORK/sim.rows" "${BENCH_JSON:-}" >"$WORK/section.md" <<PY
import json, sys
rows = [l.split('|') for l in open(sys.argv[1]).read().split('\n') if l]
base = {s: float(q) for n, s, q, *_ in rows if n == '1'}
claims = {'1': '3,000+ QPS, 256 MB', '3': '8,000+ QPS, 768 MB', '5': '15,000+ QPS, 1.2 GB', '10': '25,000+ QPS, 2.5 GB'}
out = []
print("## Simulated machines $DATE — commit $COMMIT, $CORES cores, $(uname -r)")
print()
print("Command: \`SIMULATE=1 NODES=\"$NODES\" QUOTA=$DMC_CPU_QUOTA MEMORY=$DMC_MEMORY DURATION=$DURATION CONNS_PER_NODE=${CONNS_PER_NODE:-16} scripts/bench-cluster.sh\`.")
print("Each node is a simulated machine: a cgroup of its own with $DMC_CPU_QUOTA CPU (20 ms period) and a $DMC_MEMORY memory limit")
print("where the memory controller allowed it, one shard; nginx (one process, 2 workers), MariaDB primary + replica, Redis and")
print("dm-bench (${CONNS_PER_NODE:-16} connections per node, through nginx) share what is left of the $CORES cores, unlimited.")
print("The original's figures are its claims for separate machines.")
print()
print("| nodes | scenario | QPS | p99 ms | errors | efficiency QPS(N)/(N x QPS(1)) | RSS per node MiB | the original's claim |")
print("|---|---|---|---|---|---|---|---|")
for n, s, q, p99, e, rss in rows:
    eff = float(q) / (int(n) * base[s]) if base.get(s) else 0.0
    print(f"| {n} | {s} | {q} | {p99} | {e} | {eff:.2f} | {rss} | {claims.get(n, '—')} |")
    out.append({"nodes": int(n), "scenario": s, "qps": float(q), "p99_ms": float(p99),
                "efficiency": round(eff, 3), "rss_mib_per_node": float(rss), "errors": int(e)})
print()
if sys.argv[2]:
    json.dump(out, open(sys.argv[2], 'w'), indent=1)
PY
  cat "$WORK/section.md"
  if [ "${BENCH_NO_WRITE:-0}" != 1 ]; then cat "$WORK/section.md" >>bench/RESULTS.md; fi
  exit 0
fi

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
