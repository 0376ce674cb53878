#!/usr/bin/env bash
# Builds the server and dm-bench (release) and runs the server on the
# embedded default config:
# HTTP on 127.0.0.1:8080, TCP on 127.0.0.1:9090, SQLite under ./data, no
# Redis or MySQL. Extra arguments go to the server (e.g. --config FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_tools
cargo build --release --bin datamiddleware --bin dm-bench
exec ./target/release/datamiddleware "$@"
