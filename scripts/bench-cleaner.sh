#!/usr/bin/env bash
# The cleaner's benchmark (issue 4): fill an image to 80% with files, then
# overwrite random 4 KiB pages, 90% of them in a hot 10% of the data, for
# three times the image size; report write amplification, throughput over
# time against the empty filesystem, and the longest single write.
#   scripts/bench-cleaner.sh [SIZE] [-- pagelog-hotcold options]
# Default size 2G; the image lives in /var/tmp and is removed afterwards.
# MOUNT_OPTS (e.g. MOUNT_OPTS=protect=0) is passed to pagelog-mount -o.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=2G
case ${1:-} in
--) ;;
"") ;;
*) SIZE=$1; shift ;;
esac
[ "${1:-}" = "--" ] && shift
scripts/deps.sh
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh bench
cargo build --release -p pagelog-tests --bin pagelog-hotcold
IMG=$WORK/bench.img
"$BIN/pagelog-mkfs" "$IMG" --size "$SIZE" -q
"$BIN/pagelog-mount" ${MOUNT_OPTS:+-o "$MOUNT_OPTS"} "$IMG" "$MNT"
"$BIN/pagelog-hotcold" --dir "$MNT" "$@"
umount "$MNT"
sleep 1
"$BIN/pagelog-fsck" -n "$IMG"
