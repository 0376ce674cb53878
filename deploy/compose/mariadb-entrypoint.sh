#!/bin/bash
# MariaDB of the Compose cluster: MARIADB_ROLE=primary or replica.
# First start (empty /var/lib/mysql): initialises the data directory and, on a
# server without networking, sets the root password and — on the primary —
# creates the game's database, its application user and the replication user
# (all written to the binary log, so a replica that starts from the
# beginning of it gets them too); a replica is pointed at the primary with
# GTIDs from the start. Then runs mariadbd in the foreground as PID 1.
# Both run as production must for the server's durability = "full":
# innodb_flush_log_at_trx_commit = 1 and sync_binlog = 1.
set -euo pipefail

ROLE=${MARIADB_ROLE:-primary}
DATABASE=${MARIADB_DATABASE:-game1}
PRIMARY_HOST=${MARIADB_PRIMARY_HOST:-mariadb-primary}
for name in MARIADB_ROOT_PASSWORD MARIADB_APP_PASSWORD MARIADB_REPLICATION_PASSWORD; do
  value=${!name:-}
  # They are written into SQL here and into database URLs by the nodes.
  [[ "$value" =~ ^[A-Za-z0-9_-]{8,}$ ]] || {
    echo "mariadb-entrypoint: $name must be 8 or more letters, digits, - or _" >&2
    exit 1
  }
done
[[ "$DATABASE" =~ ^[A-Za-z0-9_]{1,64}$ ]] || { echo "mariadb-entrypoint: bad MARIADB_DATABASE" >&2; exit 1; }

args=(--user=mysql --datadir=/var/lib/mysql --skip-name-resolve --bind-address=0.0.0.0 --port=3306
  --innodb-flush-log-at-trx-commit=1 --sync-binlog=1 --max-connections=500)
case "$ROLE" in
  primary) args+=(--server-id=1 --log-bin=mysql-bin --binlog-format=ROW) ;;
  replica) args+=(--server-id=2 --relay-log=relay-bin --read-only=1) ;;
  *) echo "mariadb-entrypoint: MARIADB_ROLE must be primary or replica" >&2; exit 1 ;;
esac

install -d -o mysql -g mysql /run/mysqld
if [ ! -d /var/lib/mysql/mysql ]; then
  chown mysql:mysql /var/lib/mysql
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null
  socket=/run/mysqld/init.sock
  mariadbd "${args[@]}" --skip-networking --socket="$socket" &
  pid=$!
  for _ in $(seq 1 300); do
    mariadb --socket="$socket" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "mariadb-entrypoint: mariadbd exited during initialisation" >&2; exit 1; }
    sleep 0.2
  done
  if [ "$ROLE" = primary ]; then
    sql="ALTER USER 'root'@'localhost' IDENTIFIED BY '$MARIADB_ROOT_PASSWORD';
      CREATE DATABASE \`$DATABASE\` CHARACTER SET utf8mb4;
      CREATE USER 'app'@'%' IDENTIFIED BY '$MARIADB_APP_PASSWORD';
      GRANT ALL PRIVILEGES ON \`$DATABASE\`.* TO 'app'@'%';
      CREATE USER 'repl'@'%' IDENTIFIED BY '$MARIADB_REPLICATION_PASSWORD';
      GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';"
  else
    sql="ALTER USER 'root'@'localhost' IDENTIFIED BY '$MARIADB_ROOT_PASSWORD';
      SET GLOBAL gtid_slave_pos = '';
      CHANGE MASTER TO MASTER_HOST='$PRIMARY_HOST', MASTER_PORT=3306, MASTER_USER='repl',
        MASTER_PASSWORD='$MARIADB_REPLICATION_PASSWORD', MASTER_USE_GTID=slave_pos,
        MASTER_CONNECT_RETRY=1;"
  fi
  mariadb --socket="$socket" -uroot -e "$sql"
  mariadb-admin --socket="$socket" -uroot -p"$MARIADB_ROOT_PASSWORD" shutdown
  wait "$pid"
  echo "mariadb-entrypoint: $ROLE initialised" >&2
fi
# The replica's I/O thread starts with the server and retries the primary every second.
exec mariadbd "${args[@]}"
