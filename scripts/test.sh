#!/usr/bin/env bash
# Runs the whole test suite: formatting and lint checks, unit tests, and the
# integration tests that start the real server on loopback ports.
# Installs whatever the tests need that the machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_tools
# Two cores: keep test binaries from starving each other's servers.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
