#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build, make an
# image and mount it.
#   scripts/mount-demo.sh [IMAGE] [MOUNTPOINT] [SIZE]
# Defaults: /var/tmp/pagelog.img mounted on /mnt/pagelog, 2G (sparse).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${1:-/var/tmp/pagelog.img}
MNT=${2:-/mnt/pagelog}
SIZE=${3:-2G}
scripts/deps.sh
cargo build --release --workspace
BIN=$PWD/target/release
if mountpoint -q "$MNT"; then
    echo "$MNT is already a mount point; unmount it first (umount $MNT)" >&2
    exit 1
fi
if [ ! -e "$IMAGE" ]; then
    "$BIN/pagelog-mkfs" "$IMAGE" --size "$SIZE"
else
    echo "using the existing image $IMAGE (pagelog-mkfs --force to start over)"
fi
mkdir -p "$MNT"
"$BIN/pagelog-mount" "$IMAGE" "$MNT" -o allow_other
df -h "$MNT"
echo
echo "mounted $IMAGE on $MNT; unmount with: umount $MNT"
