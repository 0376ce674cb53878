#!/usr/bin/env bash
# What a flood of wrong-password logins does to database writes: wallet
# writes measured alone, then while 60 connections guess passwords. The
# failure budgets are raised so that every guess reaches the password hash
# (the worst case for the hashing pool; with the default budgets the flood
# is refused with 429 before any hashing). Loopback only, bounded by
# DURATION seconds per run. BIN=path measures another server build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_tools
DURATION="${DURATION:-10}"
HTTP=127.0.0.1:18580
TCP=127.0.0.1:19580
WORK=$(mktemp -d /tmp/dm-flood.XXXXXX)
cargo build --release --bins >&2
BIN="${BIN:-$PWD/target/release/datamiddleware}"
BENCH=$PWD/target/release/dm-bench
cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
# Builds from before the failure budgets existed refuse their keys: set them
# only where the binary knows them.
if DM_AUTH_FAILED_LOGINS_PER_IP_PER_MIN=1 "$BIN" check-config >/dev/null 2>&1; then
  export DM_AUTH_FAILED_LOGINS_PER_IP_PER_MIN=2000000000 DM_AUTH_FAILED_LOGINS_PER_USER_PER_MIN=2000000000
fi
(cd "$WORK" && DM_HTTP_LISTEN=$HTTP DM_TCP_LISTEN=$TCP DM_LOG_LEVEL=error \
  DM_AUTH_RATE_LIMIT_PER_IP_PER_MIN=2000000000 "$BIN" >"$WORK/server.log" 2>&1) &
SERVER_PID=$!
for _ in $(seq 1 100); do curl -sf "http://$HTTP/health" >/dev/null 2>&1 && break; sleep 0.1; done
SERVER_PID=$(pgrep -f "$BIN" | head -1)
wallet() { "$BENCH" --scenario wallet --http "$HTTP" -c 4 --players 20 --duration "$DURATION" --warmup 1 --json; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$1"; }
idle=$(wallet)
"$BENCH" --scenario bad-login --http "$HTTP" -c 60 --players 20 --duration $((DURATION + 4)) --warmup 0 \
  --max-error-ratio 1 --json >"$WORK/flood.json" &
FLOOD=$!
sleep 2
flooded=$(wallet)
wait "$FLOOD" || true
echo "| run | wallet QPS | wallet p50 ms | wallet p99 ms |"
echo "|---|---|---|---|"
for run in idle flooded; do
  j=${!run}
  echo "| $run | $(echo "$j" | field "['qps']") | $(echo "$j" | field "['latency_ms']['p50']") | $(echo "$j" | field "['latency_ms']['p99']") |"
done
echo
echo "flood: $(field "['requests'] / d['duration_s']" <"$WORK/flood.json") guesses answered/s; answers by kind: $(field "['errors']" <"$WORK/flood.json")"
