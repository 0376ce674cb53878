#!/usr/bin/env bash
# Validates docs/openapi.yaml against the OpenAPI 3.1 specification with
# openapi-spec-validator, a standard validator from PyPI. The validator is
# installed the first time into a virtual environment under target/ (pinned,
# so every machine checks with the same rules); after that the check needs no
# network. tests/openapi.rs checks the other half: that the document names
# exactly the routes the router serves, and what the public ones answer.
#
#   bash scripts/check-openapi.sh [FILE]     # default: docs/openapi.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

VALIDATOR_VERSION=0.9.0
venv=target/openapi-venv
stamp="$venv/.openapi-spec-validator-$VALIDATOR_VERSION"
spec="${1:-docs/openapi.yaml}"

if [ ! -e "$stamp" ]; then
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
  rm -rf "$venv"
  mkdir -p target
  # Debian's own python3 keeps venv's pip in a package of its own.
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "openapi-spec-validator==$VALIDATOR_VERSION"
  touch "$stamp"
fi

"$venv/bin/openapi-spec-validator" "$spec"
