#!/usr/bin/env bash
# The audit log's cost (SPEC §13, bench/RESULTS.md "Issue 28: audit log cost"):
# `mixed` throughput with the audit log against the same load without it, in
# the same run, on each backend; then the verifier's speed.
#   A_BIN=PATH  the server without the audit log (e.g. the commit before it)
#   B_BIN=PATH  the server with it
#   BENCH=PATH  the load generator (default: the dm-bench beside B_BIN)
# For each backend of BACKENDS ("sqlite mysql"), ROUNDS (5) rounds in the
# order AB, BA, AB, ...; every run on a fresh server with a fresh database:
#   sqlite  the embedded default (conf/datamiddleware.toml: dev mode, SQLite
#           under ./data, no Redis) in an empty directory of its own;
#   mysql   the same with game1 on the MariaDB primary + replica of
#           scripts/backends.sh (durable commits) in a database of its own
#           (`backends.sh database`), the cache on its Redis (database
#           REDIS_DB, 13, emptied before each run: the cache keys name the game,
#           not the database), blocking_threads = pool_size = 8 as
#           scripts/bench.sh does;
# and `dm-bench --scenario mixed -c 64 --duration DURATION (10) --warmup 2
# --server-pid <server> --json` against it. Per round: QPS, p99, the server's
# CPU µs per request, errors and the load average when the round began; then
# the median B/A of the throughput and of the CPU per request. Only B is given
# DM_AUDIT_SIGNING_KEY (A refuses DM_* variables it does not know).
# After a backend's rounds, `B_BIN --config <its config> audit verify` on the
# B database that served the most requests, VERIFY_RUNS (3) times: records/s.
# Every config, dm-bench report and server log is kept in $OUT (default: a new
# /tmp/dm-bench-audit.XXXXXX, printed at the end); the section is appended to
# bench/RESULTS.md unless BENCH_NO_WRITE=1. The databases made on MariaDB are
# dropped at exit unless KEEP_DATA=1. Loopback only; every run is bounded
# (server start 30 s, dm-bench DURATION + warm-up + seeding, stop 15 s).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

BACKENDS="${BACKENDS:-sqlite mysql}"
ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CONNS="${CONNS:-64}"
VERIFY_RUNS="${VERIFY_RUNS:-3}"
REDIS_DB="${REDIS_DB:-13}"
HTTP="${HTTP:-127.0.0.1:18780}"
TCP="${TCP:-127.0.0.1:19780}"
CORES=$(nproc)

for side in A_BIN B_BIN; do
  if [ -z "${!side:-}" ] || [ ! -f "${!side}" ] || [ ! -x "${!side}" ]; then
    echo "$side must name an executable server binary" >&2
    exit 2
  fi
done
declare -A BIN=([A]=$(realpath "$A_BIN") [B]=$(realpath "$B_BIN"))
BENCH=$(realpath "${BENCH:-$(dirname "$B_BIN")/dm-bench}")
[ -x "$BENCH" ] || { echo "no dm-bench at $BENCH (set BENCH)" >&2; exit 2; }
for b in $BACKENDS; do
  case "$b" in sqlite | mysql) ;; *) echo "BACKENDS: sqlite and/or mysql, not $b" >&2; exit 2 ;; esac
done
[[ "$REDIS_DB" =~ ^[0-9]+$ ]] || { echo "REDIS_DB must be a number" >&2; exit 2; }
ulimit -n 65536 2>/dev/null || true
require_free_port "$HTTP" "$TCP"

OUT="${OUT:-$(mktemp -d /tmp/dm-bench-audit.XXXXXX)}"
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/dm-audit-work.XXXXXX)
TAG="dm_audit_$$"
KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
SERVER_PID=""
MADE_DBS=()
ADMIN_URL=""
mysql_admin() { # statement (on the primary, as the URL backends.sh printed)
  python3 - "$ADMIN_URL" "$1" <<'PY'
import subprocess, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
subprocess.run(["mariadb", "--protocol=tcp", "-h", u.hostname, "-P", str(u.port), "-u", u.username,
                "-p" + urllib.parse.unquote(u.password or ""), "-N", "-e", sys.argv[2]], check=True)
PY
}
drop_databases() {
  local db
  if [ "${KEEP_DATA:-0}" != 1 ] && [ -n "$ADMIN_URL" ]; then
    for db in ${MADE_DBS[@]+"${MADE_DBS[@]}"}; do mysql_admin "DROP DATABASE IF EXISTS \`$db\`" || true; done
  fi
  MADE_DBS=()
}
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  drop_databases
  rm -rf "$WORK"
}
trap cleanup EXIT

# The embedded default with this run's addresses, the per-address rate limit
# out of the way of one load generator and warn-level logs; on mysql game1 on
# MariaDB + Redis. Every replacement is checked (the file changing would
# otherwise go unnoticed).
write_config() { # backend dir [primary replica]
  python3 - "$@" "$HTTP" "$TCP" "$REDIS_DB" <<'PY'
import sys
args = sys.argv[1:]
backend, out = args[0], args[1]
http, tcp, redis_db = args[-3:]
text = open("conf/datamiddleware.toml").read()
def sub(old, new):
    global text
    if text.count(old) != 1:
        sys.exit(f"conf/datamiddleware.toml: expected {old!r} once")
    text = text.replace(old, new)
sub('listen = "127.0.0.1:8080"', f'listen = "{http}"')
sub('listen = "127.0.0.1:9090"', f'listen = "{tcp}"')
sub("rate_limit_per_ip_per_min = 1000", "rate_limit_per_ip_per_min = 2000000000")
sub('level = "info"', 'level = "warn"')
# Keys newer than A (60b1614), at their built-in defaults: left out, so A
# starts and both run the same settings.
sub("sched_batch = false         # true: on cores shared with one busy process (docs/configuration.md)\n", "")
if backend == "mysql":
    primary, replica = args[2], args[3]
    sub('url = "sqlite://data/game1.db"',
        f'url = "{primary}"\nreplicas = ["{replica}"]\npool_size = 8')
    sub('durability = "normal"', 'durability = "full"')
    sub("blocking_threads = 4", "blocking_threads = 8")
    sub('redis = ""                  # empty: L1 only', f'redis = "redis://127.0.0.1:16379/{redis_db}"')
open(out, "w").write(text)
PY
}

# start SIDE DIR: the server in DIR (its config node.toml, data and log); its
# pid in SERVER_PID once /health answers.
start() {
  local side=$1 dir=$2
  local env=(DM_LOG_LEVEL=warn)
  [ "$side" = B ] && env+=("DM_AUDIT_SIGNING_KEY=$KEY")
  (cd "$dir" && exec env "${env[@]}" "${BIN[$side]}" --config node.toml >server.log 2>&1) &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    curl -sf "http://$HTTP/health" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ "$(readlink "/proc/$SERVER_PID/exe" 2>/dev/null)" != "${BIN[$side]}" ] ||
    ! curl -sf "http://$HTTP/health" >/dev/null 2>&1; then
    echo "the server $side in $dir did not start; its log:" >&2
    cat "$dir/server.log" >&2
    exit 1
  fi
}
stop() {
  kill "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "server $SERVER_PID did not stop in 15 s: killed" >&2
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

SECTION="$OUT/section.md"
: >"$SECTION"
say() { echo "$@" | tee -a "$SECTION"; }
load1() { awk '{print $1}' /proc/loadavg; }

say "## Issue 28: audit log cost — $(date -u +%Y-%m-%dT%H:%MZ), $CORES cores (shared), $(uname -r)"
say
say "Command: \`A_BIN=$A_BIN B_BIN=$B_BIN BACKENDS=\"$BACKENDS\" ROUNDS=$ROUNDS DURATION=$DURATION scripts/bench-audit.sh\` (dm-bench \`$BENCH\`; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown) of the script; everything on loopback, load generator on the same $CORES cores; JSON, configs and server logs in $OUT). Each run: a fresh server and database, \`dm-bench --http $HTTP --tcp $TCP --scenario mixed -c $CONNS --duration $DURATION --warmup $WARMUP --server-pid <server> --json\`; rounds in the order AB, BA, AB, ...; B alone gets \`DM_AUDIT_SIGNING_KEY\`."

for backend in $BACKENDS; do
  if [ "$backend" = mysql ]; then
    bash scripts/backends.sh start >&2
    what="the embedded default with game1 on the MariaDB primary + replica of scripts/backends.sh (durable commits, a database of its own per run), the cache on its Redis (database $REDIS_DB, emptied before each run), blocking_threads = pool_size = 8"
  else
    what="the embedded default (dev mode, SQLite \`durability = \"normal\"\`, no Redis) in an empty directory per run"
  fi
  say
  say "### $backend — $what"
  say
  say "Load before the rounds: \`$(uptime | sed 's/^ *//')\`"
  say
  say "| round | order | load 1 min | A QPS | B QPS | B/A | A p99 ms | B p99 ms | A CPU µs/req | B CPU µs/req | B/A CPU | A errors | B errors |"
  say "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for r in $(seq 1 "$ROUNDS"); do
    order="A B"
    [ $((r % 2)) = 0 ] && order="B A"
    load=$(load1)
    for side in $order; do
      run="$backend-$r-$side"
      dir="$WORK/$run"
      mkdir -p "$dir"
      if [ "$backend" = mysql ]; then
        db="${TAG}_${r}_${side}"
        read -r primary replica < <(bash scripts/backends.sh database "$db")
        ADMIN_URL=$primary
        MADE_DBS+=("$db")
        redis-cli -p 16379 -n "$REDIS_DB" flushdb >/dev/null
        write_config mysql "$dir/node.toml" "$primary" "$replica"
      else
        write_config sqlite "$dir/node.toml"
      fi
      start "$side" "$dir"
      "$BENCH" --http "$HTTP" --tcp "$TCP" --scenario mixed -c "$CONNS" --duration "$DURATION" \
        --warmup "$WARMUP" --server-pid "$SERVER_PID" --json --label "mixed-$side" \
        >"$OUT/$run.json" 2>"$OUT/$run.err" || true
      stop
      cp "$dir/node.toml" "$OUT/$run.toml"
      cp "$dir/server.log" "$OUT/$run.server.log"
    done
    say "$(python3 - "$OUT/$backend-$r-A.json" "$OUT/$backend-$r-B.json" "$r" "$order" "$load" <<'PY'
import json, sys
def load(path):
    try:
        return json.load(open(path))
    except Exception:
        return None
a, b = load(sys.argv[1]), load(sys.argv[2])
r, order, load1 = sys.argv[3], sys.argv[4].replace(" ", ", "), sys.argv[5]
if a is None or b is None:
    print(f"| {r} | {order} | {load1} | run failed: see {sys.argv[1]} / {sys.argv[2]} and their .err |||||||||| ")
    sys.exit()
def errs(d):
    e = d["errors"]
    return "0" if not e else ", ".join(f"{k} {v}" for k, v in sorted(e.items()))
ca, cb = a.get("server_cpu_us_per_req"), b.get("server_cpu_us_per_req")
print("| %s | %s | %s | %.0f | %.0f | %.3f | %.2f | %.2f | %s | %s | %s | %s | %s |" % (
    r, order, load1, a["qps"], b["qps"], b["qps"] / a["qps"] if a["qps"] else float("nan"),
    a["latency_ms"]["p99"], b["latency_ms"]["p99"],
    "–" if ca is None else "%.1f" % ca, "–" if cb is None else "%.1f" % cb,
    "–" if not ca or cb is None else "%.3f" % (cb / ca), errs(a), errs(b)))
PY
)"
  done
  say
  say "$(python3 - "$OUT" "$backend" "$ROUNDS" <<'PY'
import json, statistics, sys
out, backend, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
pairs = []
for r in range(1, n + 1):
    try:
        pairs.append((json.load(open(f"{out}/{backend}-{r}-A.json")), json.load(open(f"{out}/{backend}-{r}-B.json"))))
    except Exception:
        pass
ok = [(a, b) for a, b in pairs if a["qps"] > 0]
if not ok:
    print("No round finished."); sys.exit()
tp = statistics.median(b["qps"] / a["qps"] for a, b in ok)
cpu = [b["server_cpu_us_per_req"] / a["server_cpu_us_per_req"] for a, b in ok
       if a.get("server_cpu_us_per_req") and b.get("server_cpu_us_per_req") is not None]
print("Median over %d rounds: A %.0f QPS, B %.0f QPS; **B/A throughput %.3f** (goal ≥ 0.95: %s); "
      "server CPU per request B/A %s (A %.1f µs, B %.1f µs)." % (
    len(ok), statistics.median(a["qps"] for a, _ in ok), statistics.median(b["qps"] for _, b in ok),
    tp, "met" if tp >= 0.95 else "NOT met",
    "%.3f" % statistics.median(cpu) if cpu else "–",
    statistics.median(a.get("server_cpu_us_per_req") or 0 for a, _ in ok),
    statistics.median(b.get("server_cpu_us_per_req") or 0 for _, b in ok)))
PY
)"
  # Warnings and errors the servers logged (level warn and above), but the
  # start-up warning every one of these configs gets (no admin account).
  logged=""
  for f in "$OUT/$backend"-*.server.log; do
    n=$(grep -v -c -e '^$' -e 'no admin account is configured' "$f" || true)
    if [ "$n" -gt 0 ]; then logged="$logged $(basename "$f" .server.log): $n line(s);"; fi
  done
  say
  say "Server log lines at warn and above, besides the start-up warning that no admin account is configured:${logged:- none.}"

  # The verifier on the B database that served the most requests.
  best=$(python3 - "$OUT" "$backend" "$ROUNDS" <<'PY'
import json, sys
out, backend, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
best = None
for r in range(1, n + 1):
    try:
        d = json.load(open(f"{out}/{backend}-{r}-B.json"))
    except Exception:
        continue
    if best is None or d["ok"] > best[1]:
        best = (r, d["ok"])
print(best[0] if best else "")
PY
)
  if [ -n "$best" ]; then
    dir="$WORK/$backend-$best-B"
    say
    say "Verifier: \`DM_AUDIT_SIGNING_KEY=<B's key> $B_BIN --config node.toml audit verify\` in the directory of round $best's B run (the B database that served the most requests), $VERIFY_RUNS times, the server stopped:"
    say
    say "| run | seconds | records | records/s | output |"
    say "|---|---|---|---|---|"
    : >"$OUT/$backend-verify.tsv"
    for v in $(seq 1 "$VERIFY_RUNS"); do
      t0=$(date +%s.%N)
      rc=0
      (cd "$dir" && DM_AUDIT_SIGNING_KEY=$KEY timeout 600 "${BIN[B]}" --config node.toml audit verify) \
        >"$OUT/$backend-verify-$v.out" 2>&1 || rc=$?
      t1=$(date +%s.%N)
      line=$(python3 - "$OUT/$backend-verify-$v.out" "$t0" "$t1" "$v" "$rc" "$OUT/$backend-verify.tsv" <<'PY'
import re, sys
text = open(sys.argv[1]).read().strip()
secs = float(sys.argv[3]) - float(sys.argv[2])
m = re.search(r"OK — (\d+) records", text)
recs = int(m.group(1)) if m else None
one = " / ".join(text.splitlines()).replace("|", "\\|")
if sys.argv[5] != "0":
    one = f"exit {sys.argv[5]}: {one}"
open(sys.argv[6], "a").write("%.6f %s\n" % (secs, "-" if recs is None or sys.argv[5] != "0" else recs))
print("| %s | %.3f | %s | %s | %s |" % (sys.argv[4], secs, "–" if recs is None else recs,
      "–" if recs is None else "%.0f" % (recs / secs), one))
PY
)
      say "$line"
    done
    say
    say "$(python3 - "$OUT/$backend-verify.tsv" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
ok = [(float(s), int(r)) for s, r in rows if r != "-"]
if not ok:
    print("The verifier did not report OK (see the table).")
else:
    secs = statistics.median(s for s, _ in ok)
    recs = ok[0][1]
    print("Median: %d records in %.3f s = **%.0f records/s** (the whole command: start-up, opening the database, every chain and checkpoint)." % (recs, secs, recs / secs))
PY
)"
  fi
  drop_databases
done
say
if [ "${BENCH_NO_WRITE:-0}" != 1 ]; then
  cat "$SECTION" >>bench/RESULTS.md
fi
echo "JSON reports, configs, server logs and this section (section.md) in $OUT" >&2
