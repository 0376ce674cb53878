#!/usr/bin/env bash
# Test and development backends on loopback, non-default ports:
#   MariaDB primary 127.0.0.1:13306, MariaDB replica 127.0.0.1:13307 (replicating
#   from the primary), Redis 127.0.0.1:16379.
# Usage: scripts/backends.sh start | stop | stop-primary | status | env
#   start   installs mariadb-server and redis-server if missing (apt-get),
#           initialises data directories under $DMTEST_BACKENDS_DIR
#           (default /tmp/dm-backends) and starts all three; idempotent.
#           MariaDB runs as production must: every commit flushes the redo
#           log and the binary log (innodb_flush_log_at_trx_commit = 1,
#           sync_binlog = 1), so an acknowledged write survives a power loss;
#           the server refuses to start a game with durability = "full"
#           (the default) on a primary without them. A server already
#           running is switched to these settings (both are dynamic).
#   env     prints the DMTEST_* variables the test suite reads.
#   cluster-start  starts a Redis Cluster on loopback: 3 masters
#           (127.0.0.1:17001-17003) and a replica of each (17004-17006),
#           made with `redis-cli --cluster create`, node timeout 1 s, replicas
#           always eligible to take over (validity factor 0; a dead
#           master's replica takes over within a few seconds); idempotent.
#   cluster-stop   stops it (and forgets it: the next start makes a new one).
#   cluster-kill PORT  SIGKILLs one node of it (failure tests).
#   cluster-restart PORT  starts that node again (it rejoins as a replica).
#   cluster-env    prints DMTEST_REDIS_CLUSTER (a redis+cluster:// URL).
#   database NAME  creates database NAME on the primary (if absent) and prints
#           its primary and replica URLs on one line (scripts/cluster.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

DIR="${DMTEST_BACKENDS_DIR:-/tmp/dm-backends}"
PRIMARY_PORT=13306
REPLICA_PORT=13307
REDIS_PORT=16379
ROOT_PW="dm-test-root"

mariadb_bin() { command -v mariadbd || command -v mysqld || echo /usr/sbin/mariadbd; }

# Runs a command with no file descriptor above 2 of this shell's: a server
# started here outlives the caller, and one that inherited, say, the open
# file of a `flock -s /work/bench.lock cargo test` would hold that lock for
# as long as it runs (a MariaDB primary restarted by tests/backends.rs did).
without_inherited_fds() {
  local fd
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-"; fi
  done
  exec "$@"
}

install() {
  if ! command -v mariadb-install-db >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1; then
    apt_install mariadb-server mariadb-client redis-server
  fi
  # nginx (with its stream module) fronts two nodes in tests/cluster_nginx.rs.
  if ! command -v nginx >/dev/null 2>&1 || [ ! -e /usr/lib/nginx/modules/ngx_stream_module.so ]; then
    apt_install nginx libnginx-mod-stream
  fi
  # The TLS test (tests/cluster_script.rs) makes a certificate and talks through it.
  if ! command -v openssl >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
    apt_install openssl curl ca-certificates
  fi
}

sql() { # port, statement
  mariadb --protocol=tcp -h127.0.0.1 -P"$1" -uroot -p"$ROOT_PW" -N -e "$2"
}

wait_port_sql() {
  for _ in $(seq 1 100); do
    if sql "$1" "SELECT 1" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "MariaDB on port $1 did not start; see $DIR/mariadb-$1.log" >&2
  return 1
}

# Durable commits (see the header); also applied to a server already running.
DURABLE_SQL="SET GLOBAL innodb_flush_log_at_trx_commit = 1; SET GLOBAL sync_binlog = 1"

start_mariadb() { # name port server-id extra-args...
  local name=$1 port=$2 id=$3; shift 3
  local data="$DIR/$name"
  if sql "$port" "SELECT 1" >/dev/null 2>&1; then
    sql "$port" "$DURABLE_SQL"
    return 0
  fi
  # Not answering: whatever socket or pid file is left belongs to a dead server.
  rm -f "$DIR/$name.sock" "$DIR/$name.sock.lock" "$DIR/$name.pid"
  if [ ! -d "$data/mysql" ]; then
    mkdir -p "$data"
    mariadb-install-db --user=root --datadir="$data" --auth-root-authentication-method=normal \
      --skip-test-db >"$DIR/install-$name.log" 2>&1
    local fresh=1
  fi
  (without_inherited_fds "$(mariadb_bin)" --user=root --datadir="$data" --port="$port" --bind-address=127.0.0.1 \
    --socket="$DIR/$name.sock" --pid-file="$DIR/$name.pid" --server-id="$id" \
    --skip-name-resolve --innodb-buffer-pool-size=64M \
    --innodb-flush-log-at-trx-commit=1 --sync-binlog=1 \
    --max-connections=500 --log-error="$DIR/mariadb-$port.log" "$@") >/dev/null 2>&1 &
  for _ in $(seq 1 100); do
    if mariadb --socket="$DIR/$name.sock" -uroot -e "SELECT 1" >/dev/null 2>&1 || sql "$port" "SELECT 1" >/dev/null 2>&1; then break; fi
    sleep 0.2
  done
  if [ "${fresh:-0}" = 1 ]; then
    mariadb --socket="$DIR/$name.sock" -uroot -e "
      ALTER USER 'root'@'localhost' IDENTIFIED BY '$ROOT_PW';
      CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
      ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '$ROOT_PW';
      GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
      FLUSH PRIVILEGES;"
  fi
  wait_port_sql "$port"
}

start_replication() {
  local running
  running=$(sql "$REPLICA_PORT" "SHOW SLAVE STATUS" | wc -l)
  if [ "$running" -gt 0 ]; then
    sql "$REPLICA_PORT" "START SLAVE" >/dev/null 2>&1 || true
    return 0
  fi
  sql "$PRIMARY_PORT" "CREATE USER IF NOT EXISTS 'repl'@'127.0.0.1' IDENTIFIED BY 'repl-pw';
    GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'; FLUSH PRIVILEGES;"
  local file pos
  read -r file pos _ < <(sql "$PRIMARY_PORT" "SHOW MASTER STATUS")
  sql "$REPLICA_PORT" "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$PRIMARY_PORT,
    MASTER_USER='repl', MASTER_PASSWORD='repl-pw', MASTER_LOG_FILE='$file', MASTER_LOG_POS=$pos,
    MASTER_CONNECT_RETRY=1;
    START SLAVE;"
}

# Starts redis-server on PORT with its files in DIR (more arguments go to it)
# unless one answers there; waits until it does.
start_redis_server() { # port dir extra-args...
  local port=$1 dir=$2; shift 2
  if redis-cli -p "$port" ping >/dev/null 2>&1; then return 0; fi
  mkdir -p "$dir"
  (without_inherited_fds redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --dir "$dir" --logfile "$dir/redis-$port.log" --pidfile "$dir/redis-$port.pid" "$@")
  for _ in $(seq 1 50); do
    if redis-cli -p "$port" ping >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "Redis on port $port did not start; see $dir/redis-$port.log" >&2
  return 1
}

start_redis() { start_redis_server "$REDIS_PORT" "$DIR"; }

CLUSTER_PORTS="17001 17002 17003 17004 17005 17006"
CLUSTER_DIR="$DIR/redis-cluster"

start_cluster_node() { # port
  start_redis_server "$1" "$CLUSTER_DIR/$1" --cluster-enabled yes \
    --cluster-config-file "$CLUSTER_DIR/$1/nodes.conf" --cluster-node-timeout 1000 \
    --cluster-replica-validity-factor 0
}

# Serving every slot, with three masters and every replica synced with its
# master (a replica that has not synced yet could not take over).
cluster_formed() {
  redis-cli -p 17001 cluster info 2>/dev/null | grep -q '^cluster_state:ok' &&
    [ "$(redis-cli -p 17001 cluster nodes 2>/dev/null | grep -c master)" -ge 3 ]
}

cluster_ok() {
  cluster_formed || return 1
  local port synced=0
  for port in $CLUSTER_PORTS; do
    if redis-cli -p "$port" info replication 2>/dev/null | grep -q 'master_link_status:up'; then
      synced=$((synced + 1))
    fi
  done
  [ "$synced" -ge 3 ]
}

start_cluster() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  for port in $CLUSTER_PORTS; do start_cluster_node "$port"; done
  if ! cluster_formed; then
    local hosts=""
    for port in $CLUSTER_PORTS; do hosts="$hosts 127.0.0.1:$port"; done
    # shellcheck disable=SC2086
    redis-cli --cluster create $hosts --cluster-replicas 1 --cluster-yes >"$CLUSTER_DIR/create.log" 2>&1 || {
      echo "redis-cli --cluster create failed; see $CLUSTER_DIR/create.log" >&2
      return 1
    }
  fi
  for _ in $(seq 1 300); do
    if cluster_ok; then return 0; fi
    sleep 0.1
  done
  echo "the Redis Cluster did not reach cluster_state:ok with its replicas synced" >&2
  return 1
}

stop_cluster() {
  for port in $CLUSTER_PORTS; do redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; done
  rm -rf "$CLUSTER_DIR"
}

stop_all() {
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  for name in replica primary; do
    if [ -f "$DIR/$name.pid" ]; then
      kill "$(cat "$DIR/$name.pid")" 2>/dev/null || true
    fi
  done
  for _ in $(seq 1 100); do
    if ! pgrep -f "datadir=$DIR/" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
}

print_env() {
  echo "export DMTEST_MYSQL_ADMIN=mysql://root:$ROOT_PW@127.0.0.1:$PRIMARY_PORT/mysql"
  echo "export DMTEST_MYSQL_PRIMARY=mysql://root:$ROOT_PW@127.0.0.1:$PRIMARY_PORT"
  echo "export DMTEST_MYSQL_REPLICA=mysql://root:$ROOT_PW@127.0.0.1:$REPLICA_PORT"
  echo "export DMTEST_REDIS=redis://127.0.0.1:$REDIS_PORT/0"
}

print_cluster_env() {
  echo "export DMTEST_REDIS_CLUSTER=redis+cluster://127.0.0.1:17001,127.0.0.1:17002,127.0.0.1:17003"
}

case "${1:-}" in
  start)
    install
    mkdir -p "$DIR"
    start_mariadb primary "$PRIMARY_PORT" 1 --log-bin=mysql-bin --binlog-format=ROW
    start_mariadb replica "$REPLICA_PORT" 2 --read-only=1 --relay-log=relay-bin
    start_replication
    start_redis
    echo "backends up: MariaDB primary :$PRIMARY_PORT, replica :$REPLICA_PORT, Redis :$REDIS_PORT" >&2
    ;;
  stop) stop_all ;;
  stop-primary)
    # For failure tests: stop the primary only (start brings it back).
    if [ -f "$DIR/primary.pid" ]; then kill "$(cat "$DIR/primary.pid")" 2>/dev/null || true; fi
    for _ in $(seq 1 100); do
      if ! sql "$PRIMARY_PORT" "SELECT 1" >/dev/null 2>&1; then break; fi
      sleep 0.1
    done
    sleep 0.5
    ;;
  status)
    sql "$PRIMARY_PORT" "SELECT 'primary up'" || true
    sql "$REPLICA_PORT" "SHOW SLAVE STATUS\G" | grep -E "Running|Behind" || true
    redis-cli -p "$REDIS_PORT" ping || true
    ;;
  env) print_env ;;
  cluster-start)
    mkdir -p "$CLUSTER_DIR"
    start_cluster
    echo "Redis Cluster up: masters and replicas on 127.0.0.1:17001-17006" >&2
    ;;
  cluster-stop) stop_cluster ;;
  cluster-kill)
    [[ "${2:-}" =~ ^1700[1-6]$ ]] || { echo "cluster-kill needs a port 17001-17006" >&2; exit 2; }
    if [ -f "$CLUSTER_DIR/$2/redis-$2.pid" ]; then kill -9 "$(cat "$CLUSTER_DIR/$2/redis-$2.pid")" 2>/dev/null || true; fi
    ;;
  cluster-restart)
    [[ "${2:-}" =~ ^1700[1-6]$ ]] || { echo "cluster-restart needs a port 17001-17006" >&2; exit 2; }
    start_cluster_node "$2"
    ;;
  cluster-env) print_cluster_env ;;
  database)
    [[ "${2:-}" =~ ^[A-Za-z0-9_]{1,64}$ ]] || { echo "database needs a name ([A-Za-z0-9_])" >&2; exit 2; }
    sql "$PRIMARY_PORT" "CREATE DATABASE IF NOT EXISTS \`$2\`"
    echo "mysql://root:$ROOT_PW@127.0.0.1:$PRIMARY_PORT/$2 mysql://root:$ROOT_PW@127.0.0.1:$REPLICA_PORT/$2"
    ;;
  *) echo "usage: $0 start|stop|stop-primary|status|env|database NAME|cluster-start|cluster-stop|cluster-kill PORT|cluster-restart PORT|cluster-env" >&2; exit 2 ;;
esac
