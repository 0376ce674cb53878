#!/usr/bin/env bash
# A local DataMiddleware cluster on loopback: MariaDB primary + replica and
# Redis (scripts/backends.sh), N nodes, and nginx in front of them with the
# shipped nginx/datamiddleware.conf (HTTP upstream and TCP `stream`).
#
# Usage: scripts/cluster.sh start N | env | status | kill I | restart-rolling | stop
#                            | nginx-config N
#   start N          builds the server and dm-bench (release) unless DMC_BIN is set, starts the
#                    backends, then N nodes (node I: HTTP 127.0.0.1:$DMC_HTTP_PORT+I,
#                    TCP $DMC_TCP_PORT+I, config $DMC_DIR/node-I.toml rendered
#                    from conf/cluster-node.template.toml) and nginx (HTTP on
#                    $DMC_HTTP_PORT, TCP on $DMC_TCP_PORT). Idempotent: nodes that
#                    run are left alone, dead ones are started again.
#   env              prints `export` lines: DMC_HTTP, DMC_TCP (nginx), DMC_NODE<I>_HTTP,
#                    DMC_NODE<I>_TCP, DMC_ADMIN_USER, DMC_ADMIN_PASSWORD, DMC_GAME,
#                    DMC_SERVER_KEY (for `eval "$(scripts/cluster.sh env)"`).
#   status           each node's pid and /ready, nginx, and the cluster registry.
#   kill I           SIGKILL node I (a crash); `start N` brings it back.
#   restart-rolling  one node at a time: SIGTERM (it drains: leaves the registry,
#                    answers what it has read, TCP clients get Error 0xE006), wait
#                    for it to exit, start it again, wait until it is ready, then
#                    DMC_ROLL_PAUSE seconds (5: nginx's fail_timeout) before the next.
#   stop             nodes and nginx; the backends keep running
#                    (scripts/backends.sh stop stops them).
#   nginx-config N   only renders $DMC_DIR/nginx/nginx.conf as `start N` would (the
#                    shipped file, upstreams at $DMC_HTTP_PORT+I) and prints its path;
#                    starts nothing (scripts/bench-shapes.sh runs it in front of
#                    other upstreams).
# Settings (environment): DMC_DIR (/tmp/dm-cluster), DMC_HTTP_PORT (18080),
# DMC_TCP_PORT (19090), DMC_SHARDS (cores / N, at least 1), DMC_BIN (a built
# server binary), DMC_REDIS_DB (1), DMC_DATABASE (dmc_game1), DMC_TLS (1: nginx
# also serves HTTPS on DMC_HTTP_PORT+443 and TLS frames on DMC_TCP_PORT+443
# with a self-signed certificate), DMC_ROLL_PAUSE (5), DMC_CPU_QUOTA (unset: a
# simulated machine per node — each node runs in a cgroup of its own with this
# many CPUs, e.g. 0.05, over a 20 ms period; root only), DMC_MEMORY (with
# DMC_CPU_QUOTA: each node's memory limit, e.g. 256M, where the memory
# controller lets this process make groups). `start` records them in
# $DMC_DIR/settings for the later commands.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

DIR="${DMC_DIR:-/tmp/dm-cluster}"
# `start` records its settings in $DIR/settings; every later command (env,
# status, kill, restart-rolling, a second start) uses them unless told
# otherwise, so `DMC_TLS=1 ... start 3` followed by plain `env` still
# prints the TLS addresses.
if [ -f "$DIR/settings" ]; then
  # shellcheck disable=SC1091
  source "$DIR/settings"
fi
HTTP_PORT="${DMC_HTTP_PORT:-${SAVED_HTTP_PORT:-18080}}"
TCP_PORT="${DMC_TCP_PORT:-${SAVED_TCP_PORT:-19090}}"
REDIS_DB="${DMC_REDIS_DB:-${SAVED_REDIS_DB:-1}}"
DATABASE="${DMC_DATABASE:-${SAVED_DATABASE:-dmc_game1}}"
TLS="${DMC_TLS:-${SAVED_TLS:-0}}"
BIN="${DMC_BIN:-${SAVED_BIN:-$PWD/target/release/datamiddleware}}"
# Seconds between two nodes of a rolling restart once the restarted one is
# ready: nginx keeps a node it saw fail marked down for `fail_timeout` (5 s
# in the shipped file), and the next node must not drain before it is back.
ROLL_PAUSE="${DMC_ROLL_PAUSE:-5}"
CPU_QUOTA="${DMC_CPU_QUOTA:-${SAVED_CPU_QUOTA:-}}"
MEMORY="${DMC_MEMORY:-${SAVED_MEMORY:-}}"
ADMIN_USER=ops
GAME=game1
STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

die() { echo "cluster.sh: $*" >&2; exit 1; }

node_count() { cat "$DIR/nodes" 2>/dev/null || echo 0; }
node_http() { echo "127.0.0.1:$((HTTP_PORT + $1))"; }
node_tcp() { echo "127.0.0.1:$((TCP_PORT + $1))"; }
# The pid of node $1: its pid file's, or — when that names no such node (a
# run killed before it wrote the file, a node that forked) — the process
# serving the node's config, so stop and kill never leave one behind.
node_pid() {
  local pid
  pid=$(cat "$DIR/node-$1.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DIR/node-$1.toml"; then
    echo "$pid"
  else
    pgrep -f -- "--config $DIR/node-$1.toml\$" | head -n1 || true
  fi
}
# Whether pid $1 runs (not a zombie) and its command line contains $2: a
# pid file left by a reboot or a crash may name some other process by now.
running() {
  [ -n "${1:-}" ] && [ -r "/proc/$1/cmdline" ] || return 1
  [ "$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null)" != Z ] || return 1
  tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}
node_alive() { running "$(node_pid "$1")" "$DIR/node-$1.toml"; }
nginx_alive() { running "$(nginx_pid)" "$DIR/nginx/nginx.conf"; }

bin() { echo "$BIN"; }

# The status code of `GET path` on host:port, or 000 when nothing answers
# (bash's /dev/tcp: no curl needed).
http_status() { # host:port path
  local host=${1%:*} port=${1##*:} line
  line=$(timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port && \
    printf 'GET $2 HTTP/1.1\r\nHost: cluster\r\nConnection: close\r\n\r\n' >&3 && head -n1 <&3" \
    2>/dev/null) || true
  echo "$line" | awk '{ print ($2 ~ /^[0-9][0-9][0-9]$/) ? $2 : "000" }'
}

wait_ready() { # node index, seconds
  local i=$1 until=$((SECONDS + $2))
  while [ "$SECONDS" -lt "$until" ]; do
    [ "$(http_status "$(node_http "$i")" /ready)" = 200 ] && return 0
    # Alive at all (it may still be setting up its cgroup, before exec).
    running "$(cat "$DIR/node-$i.pid" 2>/dev/null)" "" || die "node $i exited while starting; the end of $DIR/node-$i.log:
$(tail -n 20 "$DIR/node-$i.log")"
    sleep 0.2
  done
  die "node $i not ready after $2 s; see $DIR/node-$i.log"
}

# Secrets shared by every node of this cluster, made once per $DMC_DIR
# (written whole or not at all, readable by its owner only).
ensure_secrets() {
  [ -f "$DIR/secrets.env" ] && return 0
  local tmp=$DIR/secrets.env.tmp password hash
  rnd() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
  password=$(rnd | head -c 24)
  hash=$(echo "$password" | "$(bin)" hash-password) || die "datamiddleware hash-password failed"
  (
    umask 077
    {
      echo "DM_AUTH_JWT_SECRET=$(rnd)"
      echo "DM_AUDIT_SIGNING_KEY=$(rnd)"
      echo "DM_GAMES_GAME1_SERVER_KEY=$(rnd | head -c 32)"
      echo "ADMIN_PASSWORD=$password"
      echo "ADMIN_HASH=$hash"
    } >"$tmp"
  )
  mv "$tmp" "$DIR/secrets.env"
}

secret() { grep "^$1=" "$DIR/secrets.env" | cut -d= -f2-; }

render_node() { # index shards
  local i=$1 shards=$2 hash primary replica redis
  hash=$(secret ADMIN_HASH)
  read -r primary replica < <(scripts/backends.sh database "$DATABASE")
  redis="redis://127.0.0.1:16379/$REDIS_DB"
  sed -e "s|@ID@|dmc-$i|" -e "s|@SHARDS@|$shards|" \
    -e "s|@HTTP@|$(node_http "$i")|" -e "s|@TCP@|$(node_tcp "$i")|" \
    -e "s|@RATE_LIMIT@|2000000000|" -e "s|@REDIS@|$redis|g" \
    -e "s|@ADMIN_USER@|$ADMIN_USER|" -e "s|@ADMIN_HASH@|$hash|" \
    -e "s|@PRIMARY@|$primary|" -e "s|@REPLICA@|$replica|" \
    conf/cluster-node.template.toml >"$DIR/node-$i.toml"
}

# The cgroup of node $1 when nodes are simulated machines (DMC_CPU_QUOTA):
# made on first use under the cpu (and, if it lets us, memory) hierarchy, v1
# or v2, and named after $DIR so two clusters never share one.
CGROUP_NAME="dmc-$(echo "$DIR" | cksum | cut -d' ' -f1)"
enter_machine() { # index; run in the node's subshell before exec
  local i=$1 period=20000 quota dir
  quota=$(awk -v q="$CPU_QUOTA" -v p="$period" 'BEGIN { v = int(q * p); if (v < 1000) v = 1000; print v }')
  # The kernel's least quota is 1 ms: over 20 ms, 0.05 CPU.
  [ "$quota" -gt "$(awk -v q="$CPU_QUOTA" -v p="$period" 'BEGIN { print int(q * p) }')" ] &&
    echo "cluster.sh: DMC_CPU_QUOTA=$CPU_QUOTA is below the kernel's 1 ms per 20 ms; node $i gets 0.05 CPU" >&2
  if [ -f /sys/fs/cgroup/cpu/cpu.cfs_period_us ]; then
    dir=/sys/fs/cgroup/cpu/$CGROUP_NAME/node-$i
    mkdir -p "$dir"
    echo "$period" >"$dir/cpu.cfs_period_us"
    echo "$quota" >"$dir/cpu.cfs_quota_us"
    echo "$BASHPID" >"$dir/cgroup.procs"
  elif grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    mkdir -p "/sys/fs/cgroup/$CGROUP_NAME"
    echo "+cpu +memory" >"/sys/fs/cgroup/$CGROUP_NAME/cgroup.subtree_control" 2>/dev/null || true
    dir=/sys/fs/cgroup/$CGROUP_NAME/node-$i
    mkdir -p "$dir"
    echo "$quota $period" >"$dir/cpu.max"
    [ -z "$MEMORY" ] || echo "$MEMORY" >"$dir/memory.max" 2>/dev/null || true
    echo "$BASHPID" >"$dir/cgroup.procs"
    return 0
  else
    die "DMC_CPU_QUOTA needs a cgroup cpu controller (v1 or v2) and root"
  fi
  if [ -n "$MEMORY" ]; then
    # The memory hierarchy (v1) below the group this shell is in, if it lets us.
    local own mem
    own=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3 }' /proc/self/cgroup)
    mem=/sys/fs/cgroup/memory${own%/}/$CGROUP_NAME-node-$i
    if mkdir -p "$mem" 2>/dev/null && echo "$MEMORY" >"$mem/memory.limit_in_bytes" 2>/dev/null; then
      echo "$BASHPID" >"$mem/cgroup.procs"
    fi
  fi
}

remove_machines() {
  local d
  for d in /sys/fs/cgroup/cpu/"$CGROUP_NAME"/node-* /sys/fs/cgroup/"$CGROUP_NAME"/node-* \
    /sys/fs/cgroup/memory/*/"$CGROUP_NAME"-node-* /sys/fs/cgroup/memory/*/*/"$CGROUP_NAME"-node-*; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null || true
  done
  for d in /sys/fs/cgroup/cpu/"$CGROUP_NAME" /sys/fs/cgroup/"$CGROUP_NAME"; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null || true
  done
}

start_node() { # index
  local i=$1
  if node_alive "$i"; then return 0; fi
  (
    [ -z "$CPU_QUOTA" ] || enter_machine "$i"
    set -a
    # shellcheck disable=SC1091
    source <(grep '^DM_' "$DIR/secrets.env")
    set +a
    exec setsid "$(bin)" --config "$DIR/node-$i.toml" >>"$DIR/node-$i.log" 2>&1 </dev/null
  ) &
  echo $! >"$DIR/node-$i.pid"
  # A node restarted right after a crash waits (in the server) until its old
  # registry entry expires: up to 3 heartbeats.
  wait_ready "$i" 60
  echo "node $i (dmc-$i): http $(node_http "$i"), tcp $(node_tcp "$i"), pid $(node_pid "$i")" >&2
}

# Upstream lines (one per node) in place of the shipped ones, our listen
# addresses in place of 8080/9090/8443/9443, TLS lines on with DMC_TLS=1.
render_part() { # kind (http|tcp) n
  local kind=$1 n=$2 port=$HTTP_PORT
  [ "$kind" = tcp ] && port=$TCP_PORT
  awk -v kind="$kind" -v n="$n" -v port="$port" -v tls="$TLS" -v dir="$DIR" '
    /^[[:space:]]*server 127\.0\.0\.1:[0-9]+ / {
      if (!done) {
        params = $0; sub(/^[[:space:]]*server [^ ]+ /, "", params)
        for (i = 1; i <= n; i++) printf "    server 127.0.0.1:%d %s\n", port + i, params
        done = 1
      }
      next
    }
    /#tls / {
      if (tls != "1") next
      sub(/#tls /, "")
      gsub(/\/etc\/datamiddleware\/tls/, dir "/tls")
    }
    { sub(/listen (8080|9090) /, "listen 127.0.0.1:" port " ")
      sub(/listen (8443|9443) /, "listen 127.0.0.1:" (port + 443) " ")
      print }'
}

render_nginx() { # n
  local n=$1 d=$DIR/nginx
  mkdir -p "$d"
  if [ "$TLS" = 1 ] && [ ! -f "$DIR/tls/cert.pem" ]; then
    mkdir -p "$DIR/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
      -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
      -keyout "$DIR/tls/key.pem" -out "$DIR/tls/cert.pem" 2>/dev/null
  fi
  {
    [ -e "$STREAM_MODULE" ] && echo "load_module $STREAM_MODULE;"
    echo "worker_processes auto;"
    echo "pid $d/nginx.pid;"
    echo "error_log $d/error.log;"
    echo "events { worker_connections 4096; }"
    echo "http {"
    echo "  access_log off;"
    for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $d/$t;"; done
    sed '/^# stream {/,$d' nginx/datamiddleware.conf | render_part http "$n"
    echo "}"
    sed -n '/^# stream {/,$p' nginx/datamiddleware.conf | sed -e 's/^# \{0,1\}//' \
      | render_part tcp "$n"
  } >"$d/nginx.conf"
}

nginx_pid() { cat "$DIR/nginx/nginx.pid" 2>/dev/null || true; }

start_nginx() { # n
  render_nginx "$1"
  nginx -t -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" 2>"$DIR/nginx/test.log" \
    || die "nginx -t refused $DIR/nginx/nginx.conf: $(cat "$DIR/nginx/test.log")"
  if nginx_alive; then
    nginx -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" -s reload
  else
    nginx -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf"
  fi
  echo "nginx: http 127.0.0.1:$HTTP_PORT, tcp 127.0.0.1:$TCP_PORT" >&2
}

cmd_start() {
  local n=${1:-} shards
  [[ "$n" =~ ^[1-9][0-9]?$ ]] || die "start needs a node count from 1 to 99"
  if ! command -v nginx >/dev/null 2>&1 || [ ! -e "$STREAM_MODULE" ]; then
    apt_install nginx libnginx-mod-stream
  fi
  if [ "$TLS" = 1 ] && ! command -v openssl >/dev/null 2>&1; then
    apt_install openssl
  fi
  if [ "$BIN" = "$PWD/target/release/datamiddleware" ]; then
    ensure_build_tools
    cargo build --release --bin datamiddleware --bin dm-bench
  fi
  [ -x "$(bin)" ] || die "no server binary at $(bin)"
  scripts/backends.sh start
  mkdir -p "$DIR"
  {
    echo "SAVED_HTTP_PORT=$HTTP_PORT"
    echo "SAVED_TCP_PORT=$TCP_PORT"
    echo "SAVED_REDIS_DB=$REDIS_DB"
    echo "SAVED_DATABASE=$DATABASE"
    echo "SAVED_TLS=$TLS"
    echo "SAVED_BIN=$(printf '%q' "$BIN")"
    echo "SAVED_CPU_QUOTA=$CPU_QUOTA"
    echo "SAVED_MEMORY=$MEMORY"
  } >"$DIR/settings"
  ensure_secrets
  shards=${DMC_SHARDS:-$(($(nproc) / n))}
  [ "$shards" -ge 1 ] || shards=1
  # Nodes beyond N (from an earlier, larger start) stop.
  for ((i = n + 1; i <= $(node_count); i++)); do stop_node "$i"; done
  echo "$n" >"$DIR/nodes"
  for ((i = 1; i <= n; i++)); do
    render_node "$i" "$shards"
    start_node "$i"
  done
  start_nginx "$n"
  echo "cluster up: $n nodes ($shards shard(s) each); eval \"\$(scripts/cluster.sh env)\"" >&2
}

cmd_env() {
  [ -f "$DIR/secrets.env" ] || die "no cluster in $DIR (scripts/cluster.sh start N)"
  echo "export DMC_HTTP=127.0.0.1:$HTTP_PORT"
  echo "export DMC_TCP=127.0.0.1:$TCP_PORT"
  if [ "$TLS" = 1 ]; then
    echo "export DMC_HTTPS=127.0.0.1:$((HTTP_PORT + 443))"
    echo "export DMC_TLS_TCP=127.0.0.1:$((TCP_PORT + 443))"
    echo "export DMC_TLS_CA=$DIR/tls/cert.pem"
  fi
  for ((i = 1; i <= $(node_count); i++)); do
    echo "export DMC_NODE${i}_HTTP=$(node_http "$i")"
    echo "export DMC_NODE${i}_TCP=$(node_tcp "$i")"
  done
  echo "export DMC_ADMIN_USER=$ADMIN_USER"
  echo "export DMC_ADMIN_PASSWORD=$(secret ADMIN_PASSWORD)"
  echo "export DMC_GAME=$GAME"
  echo "export DMC_SERVER_KEY=$(secret DM_GAMES_GAME1_SERVER_KEY)"
}

cmd_status() {
  local n pid
  n=$(node_count)
  [ "$n" -gt 0 ] || { echo "no cluster in $DIR"; return 0; }
  printf '%-6s %-8s %-22s %-22s %s\n' node pid http tcp ready
  for ((i = 1; i <= n; i++)); do
    pid=$(node_pid "$i")
    node_alive "$i" || pid="dead"
    printf '%-6s %-8s %-22s %-22s %s\n' "dmc-$i" "$pid" "$(node_http "$i")" "$(node_tcp "$i")" \
      "$(http_status "$(node_http "$i")" /ready)"
  done
  if nginx_alive; then
    echo "nginx: pid $(nginx_pid), http 127.0.0.1:$HTTP_PORT ($(http_status "127.0.0.1:$HTTP_PORT" /health)), tcp 127.0.0.1:$TCP_PORT"
  else
    echo "nginx: not running"
  fi
  echo "registry (live nodes in Redis db $REDIS_DB):"
  redis-cli -p 16379 -n "$REDIS_DB" --scan --pattern 'dm:node:*' 2>/dev/null | sort | sed 's/^/  /' || true
  # The config centre's document outlives the cluster (it is kept in Redis):
  # a maintenance mode set in an earlier run is still in force.
  local settings
  settings=$(redis-cli -p 16379 -n "$REDIS_DB" get dm:config 2>/dev/null || true)
  if [ -n "$settings" ]; then
    echo "config centre (dm:config in Redis db $REDIS_DB, kept across runs): $settings"
  else
    echo "config centre: defaults (no dm:config in Redis db $REDIS_DB)"
  fi
}

stop_node() { # index; SIGTERM, then waits for the drain (SIGKILL after 30 s)
  local i=$1 pid
  pid=$(node_pid "$i")
  if node_alive "$i"; then
    kill -TERM "$pid"
    for _ in $(seq 1 300); do node_alive "$i" || break; sleep 0.1; done
    if node_alive "$i"; then
      echo "node $i did not stop within 30 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do node_alive "$i" || break; sleep 0.1; done
    fi
  fi
  rm -f "$DIR/node-$i.pid"
}

cmd_kill() {
  local i=${1:-} pid
  [[ "$i" =~ ^[0-9]+$ ]] && [ "$i" -ge 1 ] && [ "$i" -le "$(node_count)" ] \
    || die "kill needs a node number from 1 to $(node_count)"
  pid=$(node_pid "$i")
  node_alive "$i" || die "node $i is not running"
  kill -KILL "$pid"
  for _ in $(seq 1 50); do node_alive "$i" || break; sleep 0.1; done
  echo "node $i (pid $pid) killed" >&2
}

cmd_restart_rolling() {
  local n
  n=$(node_count)
  [ "$n" -gt 0 ] || die "no cluster in $DIR (scripts/cluster.sh start N)"
  for ((i = 1; i <= n; i++)); do
    echo "restarting node $i" >&2
    stop_node "$i"
    start_node "$i"
    if [ "$i" -lt "$n" ]; then sleep "$ROLL_PAUSE"; fi
  done
  echo "rolling restart done: $n nodes" >&2
}

cmd_stop() {
  local pid
  pid=$(nginx_pid)
  if nginx_alive; then
    kill -QUIT "$pid"
    for _ in $(seq 1 50); do nginx_alive || break; sleep 0.1; done
  fi
  for ((i = 1; i <= $(node_count); i++)); do stop_node "$i"; done
  remove_machines
  echo "cluster stopped (backends still run: scripts/backends.sh stop)" >&2
}

case "${1:-}" in
  start) cmd_start "${2:-}" ;;
  env) cmd_env ;;
  status) cmd_status ;;
  kill) cmd_kill "${2:-}" ;;
  restart-rolling) cmd_restart_rolling ;;
  stop) cmd_stop ;;
  nginx-config)
    [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || usage
    render_nginx "$2"
    echo "$DIR/nginx/nginx.conf"
    ;;
  *) usage ;;
esac
