#!/usr/bin/env bash
# Runs the whole test suite: formatting and lint checks, unit tests, the
# fuzz targets' smoke run, and the
# integration tests that start the real server on loopback ports — once on
# the embedded SQLite default and once on MariaDB (primary + replica) and
# Redis, which scripts/backends.sh installs and starts on loopback ports, and
# a third time (cache, backend and cluster tests) on a Redis Cluster; then the
# container image, the Compose cluster and the Kubernetes manifests with podman
# (scripts/test-containers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_tools
# A stray DM_* variable (the configuration's namespace) in the caller's shell
# never reaches a test server: the harness starts servers from an environment
# it controls (tests/common::clean_command). The guard is a test, not an
# export here: tests/lifecycle.rs runs the harness again with stray DM_*
# variables set and sees its server start.
# Two cores: keep test binaries from starving each other's servers.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# Every public item has a doc comment (missing_docs in lib.rs) and the docs build clean.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -q
# docs/openapi.yaml is valid OpenAPI 3.1 (openapi-spec-validator from PyPI, in a venv under target/).
bash scripts/check-openapi.sh

# promtool (Debian's prometheus package; its service is not started) lints
# the /metrics text in tests/http_api.rs, which fails without it here.
command -v promtool >/dev/null 2>&1 || apt_install prometheus
# tests/reference_clients.rs runs the Python reference client
# (examples/python/dm_client.py, standard library only).
command -v python3 >/dev/null 2>&1 || apt_install python3
export DMTEST_REQUIRE_PROMTOOL=1
# Debian's Chromium and chromedriver drive the operator console headless in
# tests/console.rs (screenshots under target/console-screenshots/).
[ -x /usr/bin/chromedriver ] && [ -x /usr/bin/chromium ] || apt_install chromium chromium-driver
export DMTEST_REQUIRE_CHROMIUM=1

echo "== suite on the embedded default (SQLite) =="
cargo test --all-targets
bash scripts/check-unit.sh
# Every coverage-guided fuzz target briefly from its corpus (the long runs are
# by hand: scripts/fuzz.sh run TARGET --execs N).
FUZZ_SECONDS="${FUZZ_SECONDS:-20}" bash scripts/fuzz.sh smoke

echo "== suite on MariaDB primary + replica and Redis =="
bash scripts/backends.sh start
trap 'bash scripts/backends.sh stop' EXIT
eval "$(bash scripts/backends.sh env)"
DMTEST_BACKEND=mysql cargo test --tests -- --include-ignored

echo "== cache, backend and cluster tests on a Redis Cluster (3 masters + 3 replicas) =="
bash scripts/backends.sh cluster-start
trap 'bash scripts/backends.sh cluster-stop; bash scripts/backends.sh stop' EXIT
eval "$(bash scripts/backends.sh cluster-env)"
DMTEST_BACKEND=mysql DMTEST_REDIS="$DMTEST_REDIS_CLUSTER" DMTEST_REQUIRE_REDIS_CLUSTER=1 \
  cargo test --test cache --test backends --test cluster_registry --test config_centre \
  --test singleton_jobs --test redis_cluster --test notifications --test leaderboards -- --include-ignored

echo "== container image, Compose cluster and Kubernetes manifests with podman =="
# The loopback backends are done with: stopped first, to leave the cores to
# the containers (scripts/test-containers.sh starts its own).
bash scripts/backends.sh cluster-stop
bash scripts/backends.sh stop
trap - EXIT
bash scripts/test-containers.sh
