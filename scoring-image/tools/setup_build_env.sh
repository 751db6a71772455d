#!/usr/bin/env bash
# Prepare this machine for the real scoring-image build test (tests/scoring_image/test_image_build.py).
#
# Idempotent and cached: a second run only checks and takes a few seconds.
#   1. Debian packages: buildah podman runc docker-registry debootstrap (installed only when missing).
#   2. /etc/containers/{containers,storage}.conf for root: runc, cgroupfs, file events, vfs driver,
#      ulimits within this host's hard limits (podman refuses to start a container otherwise).
#   3. A local base image, localhost/modelplane/debian-python:bookworm: a debootstrapped Debian
#      bookworm minbase with python3 + venv + CA certificates, imported with `podman import`
#      (no image can be pulled from a public registry here). The rootfs tarball is cached under
#      $CACHE_DIR so a wiped container store is re-imported in seconds.
#   4. The container storage the tests build in, kept between runs under $STORE_DIR (storage/, and
#      driver: "overlay" when the kernel mounts overlayfs there, else "vfs", which copies every layer
#      and every container's root file system in full), holding the base image too. Image layers
#      built there (e.g. an unchanged dependency install) are reused by the next run (tests/images.py).
#
# Usage: bash scoring-image/tools/setup_build_env.sh    (as root)
set -euo pipefail

BASE_IMAGE="${SCORING_BASE_IMAGE:-localhost/modelplane/debian-python:bookworm}"
CACHE_DIR="${SCORING_BUILD_CACHE_DIR:-/var/lib/modelplane-scoring}"
STORE_DIR="${MODELPLANE_BUILD_STORE:-/var/lib/modelplane-build}"
SUITE=bookworm
PACKAGES=(buildah podman runc docker-registry debootstrap ca-certificates)

log() { printf '[setup_build_env] %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (apt-get, /etc/containers, container storage)"
  exit 1
fi

# --- 1. packages -------------------------------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
else
  log "packages present"
fi

# --- 2. containers.conf / storage.conf ---------------------------------------------------------
write_if_changed() {  # write_if_changed PATH CONTENT
  local path="$1" content="$2"
  if [ ! -f "$path" ] || [ "$(cat "$path")" != "$content" ]; then
    mkdir -p "$(dirname "$path")"
    if [ -f "$path" ] && ! grep -q "modelplane scoring-image" "$path"; then
      cp "$path" "$path.orig-$(date +%s)"
    fi
    printf '%s\n' "$content" >"$path"
    log "wrote $path"
  fi
}

hard_nofile="$(ulimit -Hn)"
[ "$hard_nofile" = "unlimited" ] && hard_nofile=1048576
nofile=$(( hard_nofile < 65536 ? hard_nofile : 65536 ))
hard_nproc="$(ulimit -Hu)"
[ "$hard_nproc" = "unlimited" ] && hard_nproc=32768
nproc=$(( hard_nproc < 32768 ? hard_nproc : 32768 ))

write_if_changed /etc/containers/containers.conf "# Written by modelplane scoring-image/tools/setup_build_env.sh
[containers]
default_ulimits = [\"nofile=${nofile}:${nofile}\", \"nproc=${nproc}:${nproc}\"]

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\""

write_if_changed /etc/containers/storage.conf "# Written by modelplane scoring-image/tools/setup_build_env.sh
[storage]
driver = \"vfs\"
runroot = \"/run/containers/storage\"
graphroot = \"/var/lib/containers/storage\""

# --- 3. base image -----------------------------------------------------------------------------
mkdir -p "$CACHE_DIR"
tarball="$CACHE_DIR/debian-$SUITE-python3.tar"
if [ ! -s "$tarball" ]; then
  # The first non-security Debian mirror apt is configured with (deb822 "URIs:" or one-line "deb").
  mirror="$(grep -rhE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
    | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ' || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  rootfs="$CACHE_DIR/rootfs.tmp"
  rm -rf "$rootfs"
  log "debootstrap $SUITE from $mirror (about 1 minute)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$SUITE" "$rootfs" "$mirror" >"$CACHE_DIR/debootstrap.log" 2>&1 \
    || { tail -n 30 "$CACHE_DIR/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$rootfs"
fi
import_base() {  # import_base [podman storage flags...]
  if podman "$@" image exists "$BASE_IMAGE"; then
    log "base image $BASE_IMAGE present${1:+ in $2}"
    return
  fi
  log "importing $tarball as $BASE_IMAGE${1:+ into $2}"
  podman "$@" import --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' "$tarball" "$BASE_IMAGE" >/dev/null
}
import_base

# --- 4. the tests' build storage ---------------------------------------------------------------
overlay_mounts() {  # can overlayfs be mounted on $STORE_DIR's file system?
  local probe
  probe="$(mktemp -d "$STORE_DIR/probe.XXXXXX")"
  mkdir -p "$probe"/{lower,upper,work,merged}
  if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" \
    "$probe/merged" 2>/dev/null; then
    umount "$probe/merged"
    rm -rf "$probe"
    return 0
  fi
  rm -rf "$probe"
  return 1
}
mkdir -p "$STORE_DIR"
if [ ! -s "$STORE_DIR/driver" ]; then  # a storage keeps the driver it was created with
  if overlay_mounts; then echo overlay >"$STORE_DIR/driver"; else echo vfs >"$STORE_DIR/driver"; fi
  log "build storage $STORE_DIR/storage uses the $(cat "$STORE_DIR/driver") driver"
fi
import_base --root "$STORE_DIR/storage" --runroot /run/modelplane-build --storage-driver "$(cat "$STORE_DIR/driver")"
log "ready"
