#!/usr/bin/env bash
# The leaderboard figures (SPEC §12: reads at 1,000,000 records per board,
# p99 <= 2 ms on a node). Builds release, then for each N in SIZES, on
# loopback, with one node on SQLite (a TOML config of its own in a temporary
# directory, durability normal as the embedded default, log level info, an
# admin account):
#   1. starts the server on an empty database so that its migrations run,
#      waits SETTLE seconds and reads its memory (VmRSS and RssAnon), stops
#      it;
#   2. bulk-loads players 1..=N and a record each on board `bench` (sort
#      desc, operator best, never resets) straight into the SQLite file:
#      `dm-bench lb-load` (the server stopped), timed;
#   3. starts the server again and times it from start to /ready, then waits
#      until the board's rank view is rebuilt: the server's "leaderboard view
#      loaded" line (views of 10,000 records or more; its `ms` is the rebuild
#      and its timestamp less the start the time from start to the view), or
#      for smaller N until /metrics counts N view records; waits SETTLE
#      seconds and reads its memory again, before any request: (loaded -
#      empty) / N is the memory per record, both servers fresh and idle;
#   4. runs dm-bench (players 1..=N drawn by Zipf, s = 1; each run 2 s of
#      warm-up, DURATION s measured, with the server's CPU per request):
#      `lb-read` closed loop with -c CONNS (throughput), `lb-read` open loop
#      at READ_RATE requests/s over OPEN_CONNS connections (latency at a
#      sustainable rate: the SPEC's p99 goal), then `lb-write` closed loop
#      (-c CONNS) and open loop (WRITE_RATE over OPEN_CONNS). Reads: 45 % one
#      rank, 45 % around a player with limit 11, 10 % the top 20; writes: a
#      random score each. Beside each run, the CPU the machine's other
#      processes used meanwhile, in cores (scripts/cpu-others.py: every
#      process not descending from this script), and which used most;
#   5. with PERF=1 (and perf installed), one more closed-loop lb-read with
#      `perf record -g` on the server for its measured window, not counted in
#      the table (perf report in $OUT/perf-N.txt, with callers in
#      $OUT/perf-N-callers.txt);
#   6. reads VmRSS again, /metrics' dm_leaderboard_view_records and
#      dm_leaderboard_sql_answers_total (summed over shards; must be 0: a
#      rank counted in SQL), the server log's WARN/ERROR lines, stops it.
# It prints a Markdown section: the load (seconds, players/s, database size),
# start to ready, the rebuild (the log's ms, start to the view), memory
# empty / loaded / after the runs and per record, the SQL answers, the load
# average before and after, and a row per run (QPS, p50/p90/p99/p99.9/max ms,
# errors, server CPU µs per request, the CPU others used). The section is also written to
# $OUT/section.md beside every dm-bench report as JSON and each server's log
# ($OUT: a new /tmp/dm-bench-leaderboards.XXXXXX unless set).
# Settings: SIZES ("10000 1000000"), DURATION (20 s), CONNS (64),
# OPEN_CONNS (16), READ_RATE (2000/s), WRITE_RATE (1000/s), SETTLE (2 s),
# READY_TIMEOUT (300 s: the longest wait for /ready and for the view),
# LOAD_TIMEOUT (600 s: the longest bulk load), PERF (unset), SERVER_BIN=PATH
# (another server binary), BENCH_BIN=PATH (another dm-bench; with both set
# nothing is built), HTTP and TCP (the
# server's listen addresses, 127.0.0.1:18780 and :19780). Everything listens
# on 127.0.0.1 only; every step is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_tools

SIZES="${SIZES:-10000 1000000}"
DURATION="${DURATION:-20}"
CONNS="${CONNS:-64}"
OPEN_CONNS="${OPEN_CONNS:-16}"
READ_RATE="${READ_RATE:-2000}"
WRITE_RATE="${WRITE_RATE:-1000}"
SETTLE="${SETTLE:-2}"
READY_TIMEOUT="${READY_TIMEOUT:-300}"
LOAD_TIMEOUT="${LOAD_TIMEOUT:-600}"
PERF="${PERF:-}"
HTTP="${HTTP:-127.0.0.1:18780}"
TCP="${TCP:-127.0.0.1:19780}"
BOARD=bench
ADMIN_PASSWORD=bench-admin-password-1
CORES=$(nproc)
for n in $SIZES; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "SIZES must be positive integers, got '$n'" >&2; exit 2; }
done
for v in HTTP TCP; do
  [[ "${!v}" =~ ^127\.0\.0\.1:[1-9][0-9]*$ ]] || { echo "$v must be 127.0.0.1:PORT (loopback only), got '${!v}'" >&2; exit 2; }
done
for v in DURATION READ_RATE WRITE_RATE SETTLE; do
  [[ "${!v}" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "$v must be a number" >&2; exit 2; }
done
for v in CONNS OPEN_CONNS READY_TIMEOUT LOAD_TIMEOUT; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive integer" >&2; exit 2; }
done
if [ -n "$PERF" ] && ! command -v perf >/dev/null 2>&1; then
  echo "PERF is set but perf is not installed; going on without it" >&2
  PERF=""
fi

# With both SERVER_BIN and BENCH_BIN given nothing is built (binaries kept
# aside for an A/B in one session, while the tree changes).
if [ -z "${SERVER_BIN:-}" ] || [ -z "${BENCH_BIN:-}" ]; then
  cargo build --release --bins >&2
fi
if [ -n "${SERVER_BIN:-}" ]; then
  [ -f "$SERVER_BIN" ] && [ -x "$SERVER_BIN" ] || { echo "SERVER_BIN=$SERVER_BIN is not an executable file" >&2; exit 2; }
  BIN=$(realpath "$SERVER_BIN")
else
  BIN=$(realpath target/release/datamiddleware)
fi
if [ -n "${BENCH_BIN:-}" ]; then
  [ -f "$BENCH_BIN" ] && [ -x "$BENCH_BIN" ] || { echo "BENCH_BIN=$BENCH_BIN is not an executable file" >&2; exit 2; }
  BENCH=$(realpath "$BENCH_BIN")
else
  BENCH=$(realpath target/release/dm-bench)
fi
require_free_port "$HTTP" "$TCP"
OUT="${OUT:-$(mktemp -d /tmp/dm-bench-leaderboards.XXXXXX)}"
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/dm-lb-work.XXXXXX)
SERVER_PID=""
PERF_PID=""
cleanup() {
  [ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null || true
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
ADMIN_HASH=$(echo "$ADMIN_PASSWORD" | "$BIN" hash-password)

# config DIR: the node's TOML (the database at DIR/data/game1.db). Level
# info for the "leaderboard view loaded" line; no access or event lines.
config() {
  cat >"$1/node.toml" <<TOML
default_game = "game1"
[node]
id = "lb-bench"
shutdown_grace_ms = 2000
[http]
listen = "$HTTP"
metrics_public = true
[tcp]
listen = "$TCP"
[auth]
mode = "dev"
rate_limit_per_ip_per_min = 2000000000
[log]
level = "info"
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
# start DIR: the server in DIR; its pid in SERVER_PID, the epoch
# milliseconds of its start in START_MS, those from its start to /ready
# answering in READY_MS. The log's lines so far are skipped by LOG_FROM.
start() {
  local dir=$1
  LOG_FROM=$(($(wc -l <"$dir/server.log" 2>/dev/null || echo 0) + 1))
  START_MS=$(now_ms)
  (cd "$dir" && exec "$BIN" --config node.toml >>server.log 2>&1) &
  SERVER_PID=$!
  poll_until "$dir" "the server in $dir was not ready" ready
  READY_MS=$(($(now_ms) - START_MS))
}
ready() { "$BIN" probe --timeout-ms 500 "http://$HTTP/ready" >/dev/null 2>&1; }
# poll_until DIR WHAT CHECK...: runs CHECK every 50 ms until it succeeds;
# stops the script with WHAT and the log's tail if the server exits or
# READY_TIMEOUT seconds pass since its start.
poll_until() {
  local dir=$1 what=$2 deadline=$((START_MS + READY_TIMEOUT * 1000))
  shift 2
  until "$@"; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null || [ "$(now_ms)" -gt "$deadline" ]; then
      echo "$what within ${READY_TIMEOUT} s of its start; its log:" >&2
      tail -n 40 "$dir/server.log" >&2
      exit 1
    fi
    sleep 0.05
  done
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
# "VmRSS RssAnon" in KiB, SETTLE seconds after the call (what start-up or
# the view's load allocated, settled: the server gives freed arenas back
# within ~1 s, ops/memory.rs).
mem() {
  sleep "$SETTLE"
  awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} END {print r, a}' "/proc/$SERVER_PID/status"
}
# metric NAME: its value summed over the shards, from /metrics.
metric() {
  { curl -sf --max-time 5 "http://$HTTP/metrics" || true; } | awk -v m="$1" '$1 ~ "^"m"({|$)" {s+=$2; f=1} END {if (f) printf "%d\n", s; else print "missing"}'
}
# wait_view DIR N: waits until the board's view holds N records; sets
# VIEW_LINE (the log line, or "" for a view under 10,000 records).
wait_view() {
  local dir=$1 n=$2
  VIEW_LINE=""
  poll_until "$dir" "the view of $n records was not loaded" view_loaded "$dir" "$n"
  VIEW_SEEN_MS=$(($(now_ms) - START_MS))
}
# view_loaded DIR N: whether the view holds N records (sets VIEW_LINE).
view_loaded() {
  if [ "$2" -ge 10000 ]; then
    VIEW_LINE=$(tail -n "+$LOG_FROM" "$1/server.log" | grep -m1 'leaderboard view loaded' || true)
    [ -n "$VIEW_LINE" ]
  else
    [ "$(metric dm_leaderboard_view_records)" = "$2" ]
  fi
}
# run N NAME SCENARIO [dm-bench options...]: one measured run, its JSON in
# $OUT/NAME-N.json, its table row appended to RUN_ROWS.
run() {
  local n=$1 name=$2 scenario=$3 rc=0 sampler others
  shift 3
  echo "== $n records: $name ($scenario $*) for $DURATION s" >&2
  # The CPU the machine's other processes (compiles...) used meanwhile:
  # scripts/cpu-others.py counts every process not descending from this
  # script, over the whole dm-bench invocation (seeding and warm-up too).
  python3 scripts/cpu-others.py "$$" "$OUT/$name-$n.others" &
  sampler=$!
  "$BENCH" --http "$HTTP" --scenario "$scenario" --board "$BOARD" --lb-players "$n" \
    --duration "$DURATION" --warmup 2 --server-pid "$SERVER_PID" --json "$@" \
    >"$OUT/$name-$n.json" 2>"$OUT/$name-$n.err" || rc=$?
  kill -TERM "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  # "cores seconds top-commands"
  others=$(awk '{printf "%.2f (%s)\n", $1, $3}' "$OUT/$name-$n.others" 2>/dev/null || echo "–")
  # 2: the report is there, with more errors than --max-error-ratio.
  if [ "$rc" != 0 ] && [ "$rc" != 2 ]; then
    echo "dm-bench $scenario failed ($rc):" >&2
    cat "$OUT/$name-$n.err" >&2
    exit 1
  fi
  RUN_ROWS+=("$(python3 - "$n" "$name" "$OUT/$name-$n.json" "$others" <<'PY'
import json, sys
n, name, path, others = sys.argv[1:]
d = json.load(open(path)); l = d["latency_ms"]
errors = ", ".join("%s %d" % kv for kv in sorted(d["errors"].items())) or "0"
cpu = d.get("server_cpu_us_per_req")
how = "closed, -c %d" % d["connections"] if d["rate"] is None else "open %.0f/s, -c %d" % (d["rate"], d["connections"])
print("| %s | %s | %s | %.0f | %.3f | %.3f | %.3f | %.3f | %.3f | %s | %s | %s |" % (
    f"{int(n):,}", name, how, d["qps"], l["p50"], l["p90"], l["p99"], l["p99.9"], l["max"], errors,
    "–" if cpu is None else "%.0f" % cpu, others))
PY
)")
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

SECTION="$OUT/section.md"
: >"$SECTION"
say() { echo "$@" | tee -a "$SECTION"; }
LOAD_ROWS=()
MEM_ROWS=()
RUN_ROWS=()
SERVER_NOTES=()
STARTED=$(date -u +%Y-%m-%dT%H:%MZ)
for n in $SIZES; do
  load_before=$(loadavg)
  dir="$WORK/n$n"
  mkdir -p "$dir"
  config "$dir"
  echo "== $n records: migrations, memory of an idle server on the empty database" >&2
  start "$dir"
  read -r rss_empty anon_empty < <(mem)
  stop
  echo "== $n records: lb-load" >&2
  timeout "$LOAD_TIMEOUT" "$BENCH" lb-load --db "$dir/data/game1.db" --lb-players "$n" --board "$BOARD" \
    --json >"$OUT/load-$n.json"
  db_mib=$(du -sm "$dir/data" | awk '{print $1}')
  echo "== $n records: start with them, wait for the view" >&2
  start "$dir"
  ready_ms=$READY_MS
  wait_view "$dir" "$n"
  view_line=$VIEW_LINE
  view_seen_ms=$VIEW_SEEN_MS
  start_ms=$START_MS
  view_records=$(metric dm_leaderboard_view_records)
  read -r rss_loaded anon_loaded < <(mem)
  run "$n" lb-read-closed lb-read -c "$CONNS"
  run "$n" lb-read-open lb-read -c "$OPEN_CONNS" --rate "$READ_RATE"
  run "$n" lb-write-closed lb-write -c "$CONNS"
  run "$n" lb-write-open lb-write -c "$OPEN_CONNS" --rate "$WRITE_RATE"
  if [ -n "$PERF" ]; then
    echo "== $n records: lb-read -c $CONNS under perf record -g (not in the table)" >&2
    ( sleep 2; exec perf record -g -o "$OUT/perf-$n.data" -p "$SERVER_PID" -- sleep "$DURATION" ) \
      >"$OUT/perf-$n.log" 2>&1 &
    PERF_PID=$!
    "$BENCH" --http "$HTTP" --scenario lb-read --board "$BOARD" --lb-players "$n" -c "$CONNS" \
      --duration "$DURATION" --warmup 2 --server-pid "$SERVER_PID" --json \
      >"$OUT/lb-read-perf-$n.json" 2>"$OUT/lb-read-perf-$n.err" || true
    wait "$PERF_PID" || true
    PERF_PID=""
    # Flat (self time by object and symbol, all threads), then with callers.
    perf report -i "$OUT/perf-$n.data" --no-children --stdio -g none --sort dso,sym \
      --percent-limit 0.5 >"$OUT/perf-$n.txt" 2>/dev/null || true
    perf report -i "$OUT/perf-$n.data" --no-children --stdio --percent-limit 1 \
      >"$OUT/perf-$n-callers.txt" 2>/dev/null || true
  fi
  sql_answers=$(metric dm_leaderboard_sql_answers_total)
  records_after=$(metric dm_leaderboard_view_records)
  read -r rss_after anon_after < <(mem)
  stop
  load_after=$(loadavg)
  cp "$dir/server.log" "$OUT/server-$n.log"
  problems=$(grep -cE ' (WARN|ERROR) ' "$dir/server.log" || true)
  if [ "$problems" != 0 ]; then
    SERVER_NOTES+=("- $(printf "%'d" "$n") records: $problems WARN/ERROR lines in the server's log (server-$n.log), the first: \`$(grep -m1 -E ' (WARN|ERROR) ' "$dir/server.log" | cut -c1-300)\`")
  fi
  LOAD_ROWS+=("$(python3 - "$n" "$OUT/load-$n.json" "$db_mib" "$ready_ms" "$view_seen_ms" "$start_ms" "$view_line" "$view_records" "$records_after" "$sql_answers" "$load_before" "$load_after" <<'PY'
import datetime, json, re, sys
n, path, db, ready, seen, start, line, records, after, sql, lb, la = sys.argv[1:]
n = int(n); d = json.load(open(path))
if line:
    ts = datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    at = "%d" % (ts.timestamp() * 1000 - int(start))
    ms = re.search(r"\bms=(\d+)", line).group(1)
    recs = re.search(r"\brecords=(\d+)", line).group(1)
    rebuild = "%s (%s records)" % (ms, f"{int(recs):,}")
else:
    at, rebuild = "≤ %s (seen in /metrics)" % seen, "– (under 10,000: no line)"
print("| %s | %.2f | %.0f | %s | %s | %s | %s | %s / %s | %s | %s → %s |" % (
    f"{n:,}", d["seconds"], d["players_per_s"], db, ready, rebuild, at, records, after, sql, lb, la))
PY
)")
  MEM_ROWS+=("$(python3 - "$n" "$rss_empty" "$rss_loaded" "$rss_after" "$anon_empty" "$anon_loaded" "$anon_after" <<'PY'
import sys
n, re_, rl, ra, ae, al, aa = map(int, sys.argv[1:])
m = lambda k: "%.1f" % (k / 1024)
print("| %s | %s / %s / %s | %s / %s / %s | %.0f | %.0f | %.0f |" % (
    f"{n:,}", m(re_), m(rl), m(ra), m(ae), m(al), m(aa),
    (rl - re_) * 1024 / n, (al - ae) * 1024 / n, (ra - re_) * 1024 / n))
PY
)")
  rm -rf "$dir"
done

say "## $STARTED — leaderboards, commit $(git rev-parse --short HEAD)${SERVER_BIN:+ (server $SERVER_BIN)}, $CORES cores, $(uname -r)"
say
say "Command: \`SIZES=\"$SIZES\" DURATION=$DURATION CONNS=$CONNS OPEN_CONNS=$OPEN_CONNS READ_RATE=$READ_RATE WRITE_RATE=$WRITE_RATE${PERF:+ PERF=$PERF} scripts/bench-leaderboards.sh\` (one node on SQLite, durability normal, one shard per core; everything on loopback, the load generator on the same $CORES cores; JSON and the servers' logs in $OUT). Board \`$BOARD\`: sort desc, operator best, never resets; players 1..=N loaded by \`dm-bench lb-load\` with the server stopped, one record each. Ended $(date -u +%Y-%m-%dT%H:%MZ)."
say
say "| records | load s | players/s | database MiB | start to ready ms | view rebuild ms (log) | start to the view ms | view records loaded / at the end | SQL rank answers | load average before → after |"
say "|---|---|---|---|---|---|---|---|---|---|"
for row in "${LOAD_ROWS[@]}"; do say "$row"; done
say
say "Memory of a fresh idle server on the empty database, of one fresh after the view of N records is loaded (before any request) and after the runs, each $SETTLE s after it was reached:"
say
say "| records | VmRSS empty / loaded / after MiB | RssAnon empty / loaded / after MiB | bytes per record (VmRSS) | bytes per record (RssAnon) | after the runs (VmRSS) |"
say "|---|---|---|---|---|---|"
for row in "${MEM_ROWS[@]}"; do say "$row"; done
say
say "\`dm-bench --scenario lb-read|lb-write --lb-players N --duration $DURATION --warmup 2 --server-pid <server>\`, closed loop with \`-c $CONNS\`, open loop with \`-c $OPEN_CONNS --rate R\` (latency from each request's intended send time); players drawn by Zipf (s = 1) over 1..=N; lb-read reads 45 % one rank, 45 % around a player (limit 11), 10 % the top 20; lb-write posts a random score (0 to 10^9)."
say
say "| records | run | loop | QPS | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | server CPU µs / req | CPU others used, cores (top commands) |"
say "|---|---|---|---|---|---|---|---|---|---|---|---|"
for row in "${RUN_ROWS[@]}"; do say "$row"; done
say
if [ ${#SERVER_NOTES[@]} -gt 0 ]; then
  for note in "${SERVER_NOTES[@]}"; do say "$note"; done
else
  say "No WARN or ERROR line in the servers' logs."
fi
say
echo "JSON reports, server logs and this section (section.md) in $OUT" >&2
