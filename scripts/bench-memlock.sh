#!/usr/bin/env bash
# The cost of running without registered io_uring buffers — what a
# Kubernetes pod gets, where ulimits cannot be set and the runtime's locked
# memory limit is below the 10 MiB of I/O memory each shard registers. Two
# single-shard nodes on the embedded default side by side: one as root
# normally is (CAP_IPC_LOCK: its buffers register), one with CAP_IPC_LOCK
# dropped from its bounding set and a locked-memory limit of 1 MiB (enough
# to start, too little to register: glommio warns and goes on without),
# loaded at the same time by one dm-bench each, ROUNDS (3) times per
# scenario; prints the median ratio (without / with) and appends the section
# to bench/RESULTS.md unless BENCH_NO_WRITE=1. Root only; loopback only;
# every run is bounded by DURATION (10) + WARMUP (2) seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_tools
[ "$(id -u)" -eq 0 ] || { echo "bench-memlock.sh needs root (capabilities)" >&2; exit 1; }
command -v setpriv >/dev/null 2>&1 || apt_install util-linux

DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CONNS="${CONNS:-32}"
ROUNDS="${ROUNDS:-3}"
SCENARIOS="${SCENARIOS:-player mixed}"
WORK=$(mktemp -d /tmp/dm-bench-memlock.XXXXXX)
cargo build --release --bins >&2
BIN=$PWD/target/release/datamiddleware
BENCH=$PWD/target/release/dm-bench
require_free_port 127.0.0.1:18580 127.0.0.1:19580 127.0.0.1:18680 127.0.0.1:19680

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

start() { # name http tcp [wrapper...]
  local name=$1 http=$2 tcp=$3
  shift 3
  mkdir -p "$WORK/$name"
  (cd "$WORK/$name" && exec env DM_HTTP_LISTEN="$http" DM_TCP_LISTEN="$tcp" DM_NODE_SHARDS=1 \
    DM_LOG_LEVEL=warn DM_AUTH_RATE_LIMIT_PER_IP_PER_MIN=2000000000 "$@" "$BIN" \
    >"$WORK/$name.log" 2>&1) &
  PIDS+=($!)
  for _ in $(seq 1 150); do
    "$BIN" probe --timeout-ms 200 "http://$http/ready" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "node $name did not start:" >&2
  cat "$WORK/$name.log" >&2
  exit 1
}
start registered 127.0.0.1:18580 127.0.0.1:19580
start unregistered 127.0.0.1:18680 127.0.0.1:19680 \
  prlimit --memlock=1048576:1048576 -- setpriv --bounding-set -ipc_lock --
grep -qi "registering buffers" "$WORK/unregistered.log" ||
  echo "note: the limited node logged no buffer-registration warning (see $WORK/unregistered.log)" >&2

bench() { # http scenario -> JSON
  "$BENCH" --http "$1" --scenario "$2" -c "$CONNS" --threads 1 --duration "$DURATION" \
    --warmup "$WARMUP" --json
}
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
ROWS=()
for S in $SCENARIOS; do
  RUNS=()
  for ((r = 1; r <= ROUNDS; r++)); do
    bench 127.0.0.1:18580 "$S" >"$WORK/with.json" &
    P1=$!
    bench 127.0.0.1:18680 "$S" >"$WORK/without.json" &
    P2=$!
    wait "$P1" && wait "$P2" || { echo "dm-bench failed" >&2; exit 1; }
    RUNS+=("$(field "round(d['qps'])" <"$WORK/without.json")/$(field "round(d['qps'])" <"$WORK/with.json")")
  done
  ROWS+=("$S|${RUNS[*]}")
done

{
  echo "## Without registered buffers $(date -u +%Y-%m-%dT%H:%MZ) — commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, $(uname -r)"
  echo
  echo "Command: \`DURATION=$DURATION CONNS=$CONNS ROUNDS=$ROUNDS scripts/bench-memlock.sh\`. Two single-shard nodes on the"
  echo "embedded default side by side, loaded at the same time (dm-bench -c$CONNS --threads 1 each): one with its io_uring"
  echo "buffers registered, one without (CAP_IPC_LOCK dropped, RLIMIT_MEMLOCK 1 MiB: a Kubernetes pod's case)."
  echo
  echo "| scenario | QPS without / with registered buffers, each run | median ratio |"
  echo "|---|---|---|"
  for R in "${ROWS[@]}"; do
    IFS='|' read -r S RUNS <<<"$R"
    RATIO=$(python3 -c "
import statistics as s
print(f\"{s.median(float(a) / float(b) for a, b in (r.split('/') for r in '$RUNS'.split())):.3f}\")")
    echo "| $S | ${RUNS// /, } | $RATIO |"
  done
  echo
} | tee "$WORK/section.md"
if [ "${BENCH_NO_WRITE:-0}" != 1 ]; then cat "$WORK/section.md" >>bench/RESULTS.md; fi
