# Shared helpers for the scripts in this folder (sourced, not run).

# Installs what building needs on a fresh Debian machine: a C compiler for
# the bundled SQLite. The Rust toolchain itself must already be installed.
ensure_build_tools() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install a Rust toolchain (1.85 or newer), e.g. with rustup" >&2
    exit 1
  fi
  if ! command -v cc >/dev/null 2>&1; then
    apt_install build-essential
  fi
}

# apt-get install, running apt-get update once first when needed. The
# "already updated" mark is exported so the scripts this one starts skip the
# update too; it is named outside DM_*, the server's configuration namespace
# (a DM_ variable here reached every test server as a config key: issue 20).
# apt's output goes to stderr: scripts print their results on stdout.
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "need root to apt-get install $*" >&2
    exit 1
  fi
  if [ -z "${SCRIPTS_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    export SCRIPTS_APT_UPDATED=1
  fi
  # Packages like nginx start their default service (nginx on 0.0.0.0:80) when
  # installed; policy-rc.d forbids that, so nothing but the scripts' own
  # loopback servers runs. An existing policy of the machine is left alone.
  local policy=/usr/sbin/policy-rc.d own_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 || rc=$?
  if [ -n "$own_policy" ]; then rm -f "$policy"; fi
  return "$rc"
}

# wrk with THREADS threads and $CONNS connections for $DURATION seconds ->
# "qps p50 p99 errors" (errors: non-2xx/3xx responses + socket errors).
wrk_qps() { # threads url [wrk options...]
  local threads=$1
  shift
  wrk -t"$threads" -c"$CONNS" -d"${DURATION}s" --latency "$@" 2>/dev/null | awk '
    BEGIN {e=0}
    /Requests\/sec/ {q=$2}
    /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
    /Non-2xx or 3xx responses:/ {e+=$NF}
    /Socket errors:/ {gsub(",", ""); e+=$4+$6+$8+$10}
    END {print q, p50, p99, e}'
}

# Whether nothing accepts connections on host:port.
port_free() { # host:port
  ! (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
}

# Refuses to go on when something already accepts connections on HOST:PORT:
# with SO_REUSEPORT a forgotten server would share the port with ours and
# answer part of the requests (with its own secrets: 401s, or its own data).
require_free_port() { # host:port...
  local addr
  for addr in "$@"; do
    if ! port_free "$addr"; then
      echo "something already listens on $addr (a server left running?); stop it first" >&2
      exit 1
    fi
  done
}
