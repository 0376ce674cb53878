#!/usr/bin/env bash
# Makes the base image localhost/debian:bookworm-slim without a container
# registry: debootstrap (minbase) from this machine's Debian mirror, slimmed
# as the official debian:bookworm-slim is (no docs, man pages, locales or apt
# lists, and dpkg told to keep them out of later installs), imported into
# podman. deploy/Containerfile then builds with
#   --build-arg BASE_IMAGE=localhost/debian:bookworm-slim
# Usage: deploy/base-image.sh [IMAGE]   (as root; skips an image that exists)
# Needs: podman, debootstrap. About a minute or two with a nearby mirror.
set -euo pipefail

IMAGE="${1:-localhost/debian:bookworm-slim}"
if podman image exists "$IMAGE"; then
  echo "base image $IMAGE exists; kept" >&2
  exit 0
fi

# The first Debian mirror apt uses here (deb822 .sources or the classic list).
mirror() {
  local m
  m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' |
    grep -v security | head -n1 || true)
  [ -n "$m" ] || m=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
    awk '{print $2}' | grep -v security | head -n1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

MIRROR=$(mirror)
ROOT=$(mktemp -d /var/tmp/dm-base-image.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo "debootstrap bookworm from $MIRROR" >&2
timeout 900 debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || {
  tail -n 20 "$ROOT.log" >&2
  rm -f "$ROOT.log"
  echo "debootstrap failed" >&2
  exit 1
}
rm -f "$ROOT.log"

SECURITY=${MIRROR%/debian}/debian-security
cat >"$ROOT/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY bookworm-security main
SOURCES
cat >"$ROOT/etc/dpkg/dpkg.cfg.d/slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKG
cat >"$ROOT/etc/apt/apt.conf.d/slim" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT
find "$ROOT/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
find "$ROOT/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$ROOT"/usr/share/{man,info,groff,lintian}/* "$ROOT"/var/lib/apt/lists/* \
  "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/log/*.log
find "$ROOT/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +

tar -C "$ROOT" --numeric-owner -c . | podman import --quiet \
  --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$IMAGE" >/dev/null
echo "base image $IMAGE: $(podman image inspect --format '{{.Size}}' "$IMAGE") bytes" >&2
