#!/usr/bin/env bash
# Lints systemd/datamiddleware@.service with `systemd-analyze verify` (any
# complaint fails): the unit is rendered for instance node-1 with ExecStart
# pointing at this checkout's debug build (which `cargo test` has just made),
# since /usr/local/bin is not installed here. systemd-analyze comes from
# Debian's systemd package, installed when missing (as root); a machine where
# that is impossible says so and skips.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
if ! command -v systemd-analyze >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  apt_install systemd || true
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze not found: systemd unit not linted" >&2
  exit 0
fi
cargo build --bin datamiddleware -q
WORK=$(mktemp -d /tmp/dm-unit.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
sed "s|/usr/local/bin/datamiddleware|$PWD/target/debug/datamiddleware|g" \
  systemd/datamiddleware@.service >"$WORK/datamiddleware@node-1.service"
OUT=$(cd "$WORK" && timeout 60 systemd-analyze verify ./datamiddleware@node-1.service 2>&1 || true)
if [ -n "$OUT" ]; then
  echo "systemd/datamiddleware@.service does not verify:" >&2
  echo "$OUT" >&2
  exit 1
fi
echo "systemd unit verified"
