#!/usr/bin/env bash
# Tests what deploy/ ships, with podman on this machine (run as root on Debian 12):
#   1. the image: deploy/Containerfile's runtime-prebuilt target around the
#      host-built release binary, on a base image made locally with
#      debootstrap (deploy/base-image.sh; no registry needed); under podman's
#      DEFAULT seccomp profile it must exit 1 with the one-line io_uring
#      message; under the shipped profile with --cpus 0.5 it must run 1 shard,
#      pass its HEALTHCHECK and exit 0 on SIGTERM; the shipped profile as
#      containerd reads it (runtime-spec fields only) must serve too;
#   2. deploy/compose.yaml with podman-compose: 3 nodes, nginx, MariaDB
#      primary + replica, Redis; through nginx on 127.0.0.1 every node answers,
#      the binary protocol passes, the registry lists 3 nodes, a player
#      registered is read back; one node killed, requests still succeed and
#      the registry drops it; the nodes drain and exit 0 when stopped;
#   3. deploy/k8s/: every manifest validated offline (kubernetes-validate;
#      also the kustomize output when kubectl is here), then the Deployment,
#      ConfigMap and a Secret run with `podman kube play` (a test-only overlay,
#      below) until /ready answers on 127.0.0.1.
# It installs what it needs (apt: podman runc catatonit debootstrap
# golang-github-containernetworking-plugin-dnsname python3-venv curl; PyPI in
# a venv: podman-compose, kubernetes-validate) and writes
# /etc/containers/containers.conf when the file is absent or one this script
# wrote (runc, and default ulimits within this host's hard limits: podman's
# defaults cannot be raised without CAP_SYS_RESOURCE); a file of someone
# else's is backed up, replaced for the run and put back at exit. Kept between
# runs: the base image, the backends' images, the venv ($DMTEST_CONTAINERS_DIR,
# /var/tmp/dm-containers). Everything else it starts is removed at exit.
# Clients use only ports published on 127.0.0.1: 28080/29090 (Compose's
# nginx), 28180/29190 (kube play), 28181 (single-container checks).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

STARTED=$SECONDS
ROOT=$PWD
CACHE="${DMTEST_CONTAINERS_DIR:-/var/tmp/dm-containers}"
BASE_IMAGE=localhost/debian:bookworm-slim
IMAGE=localhost/datamiddleware:test
PROJECT=dmtest
HTTP=127.0.0.1:28080
TCP=127.0.0.1:29090
KUBE_HTTP=127.0.0.1:28180
KUBE_TCP=127.0.0.1:29190
CHECK_HTTP=127.0.0.1:28181
CONF=/etc/containers/containers.conf
MARK="# Written by DataMiddleware's scripts/test-containers.sh"

say() { echo "test-containers: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }
phase() { say "[$((SECONDS - STARTED)) s] $*"; }

[ "$(id -u)" -eq 0 ] || fail "run as root (podman, apt-get)"
require_free_port "$HTTP" "$TCP" "$KUBE_HTTP" "$KUBE_TCP" "$CHECK_HTTP"

WORK=$(mktemp -d /tmp/dm-test-containers.XXXXXX)
COMPOSE_UP="" KUBE_UP="" CONF_BACKUP="" OLD_IDS=""
drop_replaced_images() {
  local id
  for id in $OLD_IDS; do
    if [ "$(podman image inspect --format '{{len .RepoTags}}' "$id" 2>/dev/null)" = 0 ]; then
      podman image rm "$id" >/dev/null 2>&1 || true
    fi
  done
}
cleanup() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ]; then
    say "logs of what ran:"
    for c in $(podman ps -a --format '{{.Names}}' | grep -E "^(${PROJECT}_|dmtest-|dmcheck-)"); do
      echo "--- $c" >&2
      podman logs --tail 15 "$c" >&2 2>&1
    done
  fi
  podman rm -f -v dmcheck-half dmcheck-containerd >/dev/null 2>&1
  if [ -n "$COMPOSE_UP" ]; then
    (cd "$ROOT/deploy" && timeout 120 "$CACHE/venv/bin/podman-compose" --env-file "$WORK/compose.env" \
      -p "$PROJECT" down -v >"$WORK/compose-down.log" 2>&1)
  fi
  if [ -n "$KUBE_UP" ]; then
    timeout 120 podman kube down "$WORK/kube-play.yaml" >/dev/null 2>&1
    podman secret rm dmtest-datamiddleware >/dev/null 2>&1
    podman volume rm -f dmtest-datamiddleware >/dev/null 2>&1
  fi
  drop_replaced_images
  if [ -n "$CONF_BACKUP" ]; then mv -f "$CONF_BACKUP" "$CONF"; fi
  rm -rf "$WORK"
  say "$([ "$rc" -eq 0 ] && echo passed || echo failed) in $((SECONDS - STARTED)) s"
}
trap cleanup EXIT

# --- tools ------------------------------------------------------------------
phase "tools"
missing=()
for p in podman runc catatonit debootstrap golang-github-containernetworking-plugin-dnsname \
  python3-venv curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi

# podman's defaults: runc (crun refuses cgroup v1 hybrid hosts) and ulimits
# this host can grant (root without CAP_SYS_RESOURCE cannot raise its hard
# limits, and podman's default nofile is above them).
limit() { # ulimit option -> a figure for podman ("unlimited" -> -1)
  local v
  v=$(ulimit -H "$1")
  [ "$v" = unlimited ] && echo -1 || echo "$v"
}
NOFILE=$(limit -n)
NPROC=$(limit -u)
MEMLOCK_KB=$(limit -l)
MEMLOCK=$([ "$MEMLOCK_KB" = -1 ] && echo -1 || echo $((MEMLOCK_KB * 1024)))
[ "$NOFILE" = -1 ] && NOFILE=1048576
# Observed here: runc could not set nproc above 32768, which is kernel.pid_max.
pid_max=$(cat /proc/sys/kernel/pid_max)
if [ "$NPROC" = -1 ] || [ "$NPROC" -gt "$pid_max" ]; then NPROC=$pid_max; fi
if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  CONF_BACKUP="$CONF.before-datamiddleware-test"
  cp -p "$CONF" "$CONF_BACKUP"
  say "$CONF backed up to $CONF_BACKUP for this run"
elif [ -e "$CONF.before-datamiddleware-test" ]; then
  CONF_BACKUP="$CONF.before-datamiddleware-test" # left by a run that was killed: put back at exit
fi
mkdir -p /etc/containers
cat >"$CONF.tmp" <<EOF
$MARK
# (DESIGN "Wave 3"): runc, and default ulimits within this host's hard limits.
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=$NPROC:$NPROC"]

[engine]
runtime = "runc"
EOF
mv "$CONF.tmp" "$CONF"

# podman-compose and kubernetes-validate from PyPI, in a venv kept between runs.
mkdir -p "$CACHE"
VENV=$CACHE/venv
if ! "$VENV/bin/podman-compose" version >/dev/null 2>&1 || [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  rm -rf "$VENV"
  PY=$(command -v /usr/bin/python3 || command -v python3)
  "$PY" -m venv "$VENV"
  timeout 600 "$VENV/bin/pip" install -q 'podman-compose==1.6.0' 'kubernetes-validate==1.37.0'
fi

# The shipped profile is this podman's default plus the io_uring rule.
if ! deploy/seccomp/generate.sh --check >"$WORK/seccomp-check.log" 2>&1; then
  say "note: $(tail -n1 "$WORK/seccomp-check.log") (this host's podman differs from the one it was made from)"
fi

# --- images -----------------------------------------------------------------
# Images this run replaces are removed once untagged (nothing else's is).
OLD_IDS=$(podman image inspect --format '{{.Id}}' "$IMAGE" localhost/datamiddleware-mariadb:bookworm \
  localhost/datamiddleware-nginx:bookworm localhost/datamiddleware-redis:bookworm 2>/dev/null || true)
phase "base image"
timeout 1200 deploy/base-image.sh "$BASE_IMAGE"
phase "release binary"
ensure_build_tools
timeout 2400 cargo build --release --bin datamiddleware -q
phase "image"
timeout 600 podman build -q --format docker -f deploy/Containerfile --target runtime-prebuilt \
  --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$IMAGE" . >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
say "image $IMAGE: $((size / 1000000)) MB (binary $(($(stat -c %s target/release/datamiddleware) / 1000000)) MB)"

# The status code of GET URL, 000 when nothing answers.
status() { curl -s -o /dev/null -m 3 -w '%{http_code}' "$1" || true; }
# Polls until GET URL answers CODE, at most SECONDS.
wait_status() { # url code seconds what
  local deadline=$((SECONDS + $3))
  while [ "$SECONDS" -lt "$deadline" ]; do
    [ "$(status "$1")" = "$2" ] && return 0
    sleep 0.2
  done
  fail "$4: $1 did not answer $2 within $3 s"
}
# The exit code of a container once it has stopped, at most SECONDS.
wait_exit() { # container seconds
  local deadline=$((SECONDS + $2)) state
  while [ "$SECONDS" -lt "$deadline" ]; do
    state=$(podman inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$1")
    case "$state" in exited*|stopped*) echo "${state#* }"; return 0 ;; esac
    sleep 0.2
  done
  fail "$1 still runs after $2 s"
}

# --- single-container checks ------------------------------------------------
phase "image under podman's default seccomp profile"
rc=0
out=$(timeout 60 podman run --rm --no-healthcheck --name dmcheck-default "$IMAGE" 2>&1) || rc=$?
lines=$(printf '%s\n' "$out" | grep -c .)
[ "$rc" -eq 1 ] || fail "exit code $rc under the default profile, expected 1: $out"
[ "$lines" -eq 1 ] || fail "expected one line under the default profile, got $lines: $out"
case "$out" in
  "datamiddleware: io_uring is not available"*"deploy/seccomp/datamiddleware.json"*) ;;
  *) fail "unexpected message under the default profile: $out" ;;
esac
! grep -q panick <<<"$out" || fail "it panicked: $out"
say "default profile: exit 1, one line: $out"

phase "image with the shipped profile and --cpus 0.5"
timeout 120 podman run -d --name dmcheck-half --cpus 0.5 --security-opt seccomp=deploy/seccomp/datamiddleware.json \
  -p "$CHECK_HTTP:8080" "$IMAGE" >/dev/null 2>"$WORK/half.err"
wait_status "http://$CHECK_HTTP/health" 200 60 "--cpus 0.5"
shards=$(podman logs dmcheck-half 2>&1 | grep -o 'shards: [0-9]* ([^)]*)' | head -n1)
say "--cpus 0.5: $shards"
[[ "$shards" == "shards: 1 "* ]] || fail "--cpus 0.5 should run 1 shard: $shards"
# The image's HEALTHCHECK (datamiddleware probe, no shell tools), run on demand:
# this host has no systemd to schedule it.
timeout 30 podman healthcheck run dmcheck-half >/dev/null 2>&1 || fail "the image's HEALTHCHECK failed"
timeout 60 podman stop -t 15 dmcheck-half >/dev/null 2>&1
code=$(wait_exit dmcheck-half 30)
[ "$code" = 0 ] || fail "SIGTERM: exit code $code, expected 0 (drained)"
podman logs dmcheck-half 2>&1 | grep -q 'datamiddleware stopped' || fail "no 'datamiddleware stopped' after SIGTERM"
podman rm -v dmcheck-half >/dev/null
say "HEALTHCHECK passes; SIGTERM drains and exits 0"

phase "the shipped profile as containerd reads it"
"$VENV/bin/python" - deploy/seccomp/datamiddleware.json "$WORK/containerd-view.json" <<'PY'
import json, sys
# containerd's seccomp.WithProfile unmarshals the file into the runtime-spec
# LinuxSeccomp type: podman's includes/excludes (capabilities, architectures)
# and archMap are dropped, so every rule applies unconditionally.
p = json.load(open(sys.argv[1]))
fields = ("defaultAction", "defaultErrnoRet", "architectures", "flags", "syscalls")
out = {k: v for k, v in p.items() if k in fields}
out["syscalls"] = [{k: v for k, v in s.items() if k in ("names", "action", "errnoRet", "args")}
                   for s in p["syscalls"]]
json.dump(out, open(sys.argv[2], "w"))
PY
timeout 120 podman run -d --name dmcheck-containerd --no-healthcheck --security-opt seccomp="$WORK/containerd-view.json" \
  -p "$CHECK_HTTP:8080" "$IMAGE" >/dev/null
wait_status "http://$CHECK_HTTP/health" 200 60 "containerd's reading of the profile"
podman rm -f -v dmcheck-containerd >/dev/null
say "containerd's reading of the profile: serves"

# --- Compose ----------------------------------------------------------------
phase "Compose: backends"
rnd() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
ADMIN_PASSWORD=$(rnd | head -c 24)
ADMIN_HASH=$(echo "$ADMIN_PASSWORD" | target/release/datamiddleware hash-password)
(
  umask 077
  cat >"$WORK/compose.env" <<EOF
JWT_SECRET=$(rnd)
AUDIT_SIGNING_KEY=$(rnd)
GAME1_SERVER_KEY=$(rnd | head -c 32)
OPS_PASSWORD_HASH='$ADMIN_HASH'
MARIADB_ROOT_PASSWORD=$(rnd | head -c 24)
MARIADB_APP_PASSWORD=$(rnd | head -c 24)
MARIADB_REPLICATION_PASSWORD=$(rnd | head -c 24)
REDIS_PASSWORD=$(rnd | head -c 24)
DATAMIDDLEWARE_IMAGE=$IMAGE
DATAMIDDLEWARE_HTTP_PORT=${HTTP##*:}
DATAMIDDLEWARE_TCP_PORT=${TCP##*:}
DATAMIDDLEWARE_MEMLOCK=$MEMLOCK
DATAMIDDLEWARE_NOFILE=$NOFILE
DATAMIDDLEWARE_NPROC=$NPROC
BASE_IMAGE=$BASE_IMAGE
EOF
)
compose() { # timeout-seconds args...
  local t=$1
  shift
  (cd deploy && timeout "$t" "$VENV/bin/podman-compose" --env-file "$WORK/compose.env" -p "$PROJECT" "$@")
}
compose 1200 build >"$WORK/compose-build.log" 2>&1 || { tail -n 30 "$WORK/compose-build.log" >&2; fail "podman-compose build"; }
COMPOSE_UP=1
# podman 4.3 cannot wait for service_healthy (podman-compose skips the
# condition): start the backends, wait for their health checks here (run on
# demand: no systemd to schedule them), then the rest.
compose 300 up -d mariadb-primary mariadb-replica redis >"$WORK/compose-up.log" 2>&1 ||
  { tail -n 30 "$WORK/compose-up.log" >&2; fail "podman-compose up (backends)"; }
for svc in mariadb-primary mariadb-replica redis; do
  deadline=$((SECONDS + 180))
  until timeout 30 podman healthcheck run "${PROJECT}_${svc}_1" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$svc not healthy within 180 s"
    sleep 0.5
  done
done
phase "Compose: nodes and nginx"
compose 300 up -d >>"$WORK/compose-up.log" 2>&1 || { tail -n 30 "$WORK/compose-up.log" >&2; fail "podman-compose up"; }
wait_status "http://$HTTP/ready" 200 120 "Compose through nginx"

# Every node answers through nginx (least_conn: sequential requests rotate).
seen=""
deadline=$((SECONDS + 60))
while [ "$(wc -w <<<"$seen")" -lt 3 ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "through nginx only these nodes answered within 60 s: $seen"
  id=$(curl -s -m 3 "http://$HTTP/health" | grep -o '"node_id":"[^"]*"' | cut -d'"' -f4 || true)
  if [ -n "$id" ] && ! grep -qw -- "$id" <<<"$seen"; then seen="$seen $id"; fi
done
say "through nginx, every node answered:$seen"

# The binary protocol through nginx's stream block: Ping (0x2002) -> Pong (0x2003).
pong() { # host:port -> the reply's message type
  "$VENV/bin/python" - "$1" <<'PY'
import socket, struct, sys, zlib
host, port = sys.argv[1].rsplit(":", 1)
head = struct.pack(">BHBIqI", 1, 0x2002, 0, 7, 0, 0)
rest = struct.pack(">HH", 0, 0)
frame = head + struct.pack(">I", zlib.crc32(head + rest)) + rest
with socket.create_connection((host, int(port)), timeout=5) as s:
    s.settimeout(5)
    s.sendall(frame)
    reply = b""
    while len(reply) < 28:
        chunk = s.recv(28 - len(reply))
        if not chunk:
            break
        reply += chunk
print(hex(struct.unpack(">H", reply[1:3])[0]) if len(reply) >= 3 else "none")
PY
}
[ "$(pong "$TCP")" = 0x2003 ] || fail "no Pong through nginx's stream block on $TCP"
say "binary protocol through nginx: Ping -> Pong"

# A player registered through nginx is read back with its token.
user="alice$(rnd | head -c 6)"
curl -s -m 10 -XPOST "http://$HTTP/api/v1/players" -d "{\"username\":\"$user\",\"password\":\"secret-pw-1\"}" >"$WORK/register.json"
pid=$(grep -o '"id":[0-9]*' "$WORK/register.json" | head -n1 | cut -d: -f2)
[ -n "$pid" ] || fail "registration: $(cat "$WORK/register.json")"
token=$(curl -s -m 10 -XPOST "http://$HTTP/api/v1/auth/login" -d "{\"username\":\"$user\",\"password\":\"secret-pw-1\"}" |
  grep -o '"token":"[^"]*"' | cut -d'"' -f4)
[ -n "$token" ] || fail "login of $user"
read_player() {
  curl -s -m 10 "http://$HTTP/api/v1/players/$pid" -H "Authorization: Bearer $token" | grep -o "\"username\":\"$user\"" || true
}
[ -n "$(read_player)" ] || fail "player $pid not read back"
say "player $user (id $pid) registered and read back through nginx"

admin=$(curl -s -m 10 -XPOST "http://$HTTP/api/v1/auth/admin" -d "{\"username\":\"ops\",\"password\":\"$ADMIN_PASSWORD\"}" |
  grep -o '"token":"[^"]*"' | cut -d'"' -f4)
[ -n "$admin" ] || fail "admin login (DM_ADMINS_OPS_PASSWORD_HASH from the env file)"
live_nodes() { curl -s -m 5 "http://$HTTP/api/v1/cluster/nodes" -H "Authorization: Bearer $admin" | grep -o '"node_id":"[^"]*"' | sort -u | wc -l; }
deadline=$((SECONDS + 30))
until [ "$(live_nodes)" -eq 3 ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "the registry (Redis) does not list 3 nodes: $(live_nodes)"
  sleep 0.5
done
say "the cluster registry lists 3 nodes"

phase "Compose: one node killed"
timeout 60 podman kill "${PROJECT}_node-2_1" >/dev/null
code=$(wait_exit "${PROJECT}_node-2_1" 30)
[ "$code" != 0 ] || fail "node-2 was not killed"
ok=0
for _ in $(seq 1 30); do
  [ "$(status "http://$HTTP/health")" = 200 ] && ok=$((ok + 1))
done
[ "$ok" -eq 30 ] || fail "with node-2 killed, $ok of 30 requests through nginx succeeded"
[ -n "$(read_player)" ] || fail "with node-2 killed, player $pid not read back"
deadline=$((SECONDS + 30))
until [ "$(live_nodes)" -eq 2 ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "the registry still lists $(live_nodes) nodes 30 s after the kill"
  sleep 0.5
done
say "node-2 killed: 30 of 30 requests and the player read succeeded through nginx; the registry lists 2 nodes"

phase "Compose: stop"
compose 120 stop >"$WORK/compose-stop.log" 2>&1 || { tail -n 20 "$WORK/compose-stop.log" >&2; fail "podman-compose stop"; }
for n in 1 3; do
  code=$(wait_exit "${PROJECT}_node-${n}_1" 30)
  [ "$code" = 0 ] || fail "node-$n exited $code when stopped, expected 0 (drained)"
done
compose 120 down -v >"$WORK/compose-down.log" 2>&1 || { tail -n 20 "$WORK/compose-down.log" >&2; fail "podman-compose down"; }
COMPOSE_UP=""
[ -z "$(podman ps -a --format '{{.Names}}' | grep "^${PROJECT}_" || true)" ] || fail "containers left after down"
say "stopped: the nodes drained and exited 0; nothing left"

# --- Kubernetes ---------------------------------------------------------------
phase "Kubernetes: validation"
manifests=()
for f in deploy/k8s/*.yaml; do [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f"); done
"$VENV/bin/kubernetes-validate" --strict --quiet "${manifests[@]}" || fail "kubernetes-validate"
if command -v kubectl >/dev/null 2>&1; then
  kubectl kustomize deploy/k8s >"$WORK/kustomized.yaml" || fail "kubectl kustomize deploy/k8s"
  "$VENV/bin/kubernetes-validate" --strict --quiet "$WORK/kustomized.yaml" || fail "kubernetes-validate (kustomize output)"
  say "validated: ${manifests[*]} and their kustomize output"
else
  say "validated: ${manifests[*]} (no kubectl here: the kustomize output was not built)"
fi

phase "Kubernetes: podman kube play"
# The test-only overlay, for what podman 4.3's kube play does differently from
# a cluster: one replica (each would bind the same host port), the ports on
# 127.0.0.1, the seccomp profile as the pod annotation (kube play reads
# that, not securityContext.seccompProfile; --seccomp-profile-root points
# at deploy/seccomp as /var/lib/kubelet/seccomp does on a node), names
# prefixed dmtest-, and the Secret as a podman secret in the JSON form kube
# play reads (it cannot read one it made from a Secret document). The
# Secret's data: the embedded store (no MariaDB here) and prod-mode secrets.
"$VENV/bin/python" - "$WORK" "$IMAGE" "${KUBE_HTTP##*:}" "${KUBE_TCP##*:}" <<'PY'
import base64, json, os, sys, yaml
work, image, http_port, tcp_port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
prefix = "dmtest-"
config = yaml.safe_load(open("deploy/k8s/configmap.yaml"))
deployment = yaml.safe_load(open("deploy/k8s/deployment.yaml"))
config["metadata"]["name"] = prefix + config["metadata"]["name"]
deployment["metadata"]["name"] = prefix + deployment["metadata"]["name"]
deployment["spec"]["replicas"] = 1
template = deployment["spec"]["template"]
profile = template["spec"]["securityContext"]["seccompProfile"]["localhostProfile"]
template["metadata"].setdefault("annotations", {})[
    "seccomp.security.alpha.kubernetes.io/pod"] = "localhost/" + profile
container = template["spec"]["containers"][0]
container["image"] = image
for port in container["ports"]:
    port["hostIP"] = "127.0.0.1"
    port["hostPort"] = {"http": http_port, "tcp": tcp_port}[port["name"]]
container["envFrom"][0]["secretRef"]["name"] = prefix + "datamiddleware"
for volume in template["spec"]["volumes"]:
    if "configMap" in volume:
        volume["configMap"]["name"] = config["metadata"]["name"]
secret = {
    "DM_AUTH_JWT_SECRET": os.urandom(32).hex(),
    "DM_AUDIT_SIGNING_KEY": os.urandom(32).hex(),
    "DM_GAMES_GAME1_SERVER_KEY": os.urandom(16).hex(),
    "DM_GAMES_GAME1_URL": "sqlite:///var/lib/datamiddleware/game1.db",
}
with open(os.path.join(work, "kube-secret.json"), "w") as f:
    json.dump({k: base64.b64encode(v.encode()).decode() for k, v in secret.items()}, f)
with open(os.path.join(work, "kube-play.yaml"), "w") as f:
    yaml.safe_dump_all([config, deployment], f, sort_keys=False)
PY
KUBE_UP=1
timeout 60 podman secret create dmtest-datamiddleware "$WORK/kube-secret.json" >/dev/null
timeout 300 podman kube play --seccomp-profile-root "$ROOT/deploy/seccomp" "$WORK/kube-play.yaml" \
  >"$WORK/kube-play.log" 2>&1 || { tail -n 20 "$WORK/kube-play.log" >&2; fail "podman kube play"; }
wait_status "http://$KUBE_HTTP/ready?scope=node" 200 120 "kube play"
wait_status "http://$KUBE_HTTP/ready" 200 10 "kube play"
wait_status "http://$KUBE_HTTP/health" 200 10 "kube play"
[ "$(pong "$KUBE_TCP")" = 0x2003 ] || fail "no Pong from the kube play pod on $KUBE_TCP"
node=$(curl -s -m 3 "http://$KUBE_HTTP/health" | grep -o '"node_id":"[^"]*"' | cut -d'"' -f4)
[[ "$node" == dmtest-datamiddleware* ]] || fail "node id should be the pod's name, got $node"
say "kube play: /ready?scope=node, /ready, /health 200 and Ping -> Pong on 127.0.0.1; node id $node (the pod's name)"
timeout 120 podman kube down "$WORK/kube-play.yaml" >/dev/null 2>&1 || fail "podman kube down"
podman secret rm dmtest-datamiddleware >/dev/null
podman volume rm -f dmtest-datamiddleware >/dev/null 2>&1 || true
KUBE_UP=""
phase "done"
