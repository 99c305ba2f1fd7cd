#!/usr/bin/env bash
# Defragmentation's benchmark (issue 14): a 1 GiB file made fragmented by
# random 4 KiB overwrites, read sequentially cold before and after
# `pagelog-frag --defrag`, and a second one after `-o autodefrag` laid it
# out again behind a first read, each beside a 1 GiB file written in one
# go (the contiguous anchor, in the same image and the same run).
#
#   scripts/bench-frag.sh [RUNS] [OVERWRITES]   (default 3 reads of each, 20000 overwrites)
#
# A cold read: the daemon is unmounted and mounted again (FUSE and the
# kernel forget the file) and the page cache is dropped (the image's
# pages too), then `dd bs=1M` reads the file. Printed: MB/s (median of
# RUNS), the extents pagelog-frag reports, and each read's ratio to the
# contiguous file's.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
OVERWRITES=${2:-20000}
scripts/deps.sh
. scripts/bench-lib.sh frag
IMG=$WORK/f.img
"$BIN/pagelog-mkfs" "$IMG" --size 6G -q --preallocate

mount_it() { "$BIN/pagelog-mount" "$@" "$IMG" "$MNT"; }
umount_it() { pagelog_umount "$IMG" "$MNT"; }

# Writes 1 GiB to FILE, then OVERWRITES random 4 KiB pages of it, an
# fsync every 500 (each a record of its own in the log).
fragment() { # file
    dd if=/dev/urandom of="$1" bs=1M count=1024 conv=fsync status=none
    python3 - "$1" "$OVERWRITES" <<'PY'
import os, random, sys
path, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(14)
fd = os.open(path, os.O_WRONLY)
pages = (1 << 30) // 4096
for i in range(n):
    os.pwrite(fd, os.urandom(4096), rng.randrange(pages) * 4096)
    if i % 500 == 499:
        os.fsync(fd)
os.fsync(fd)
os.close(fd)
PY
}

extents() { # file name
    "$BIN/pagelog-frag" --json --worst 100 "$MNT" | python3 -c '
import json, sys
v = json.load(sys.stdin)
print(next((w["extents"] for w in v["worst"] if w["path"] == "/" + sys.argv[1]), 1))' "$1"
}

# MB/s of a cold sequential read of FILE (median of RUNS), the mount
# made with the options given.
cold_read() { # file [mount options...]
    local f=$1 i out
    shift
    for i in $(seq "$RUNS"); do
        umount_it
        drop
        mount_it "$@"
        out=$(dd if="$MNT/$f" of=/dev/null bs=1M 2>&1 | tail -1)
        echo "$out" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^[MG]B\/s$/) print ($i == "GB/s" ? $(i-1) * 1000 : $(i-1))}'
    done | median
}

mount_it
echo "writing the contiguous file and two fragmented ones ($OVERWRITES overwrites each)"
dd if=/dev/urandom of="$MNT/contiguous" bs=1M count=1024 conv=fsync status=none
fragment "$MNT/fragmented"
fragment "$MNT/autodefrag"
sleep 6
printf '%-34s %10s %8s %8s\n' read MB/s extents ratio
contig=$(cold_read contiguous)
printf '%-34s %10s %8s %8s\n' "contiguous" "$contig" "$(extents contiguous)" 1.00
before=$(cold_read fragmented)
printf '%-34s %10s %8s %8s\n' "fragmented" "$before" "$(extents fragmented)" "$(ratio "$before" "$contig")"
start=$(now)
"$BIN/pagelog-frag" --defrag "$MNT/fragmented" | tail -1
echo "  --defrag took $(secs "$start" "$(now)") s"
after=$(cold_read fragmented)
printf '%-34s %10s %8s %8s\n' "after --defrag" "$after" "$(extents fragmented)" "$(ratio "$after" "$contig")"
auto_before=$(cold_read autodefrag)
printf '%-34s %10s %8s %8s\n' "second file, fragmented" "$auto_before" "$(extents autodefrag)" "$(ratio "$auto_before" "$contig")"
umount_it
drop
mount_it -o autodefrag
start=$(now)
dd if="$MNT/autodefrag" of=/dev/null bs=1M status=none
echo "  the read that triggers autodefrag took $(secs "$start" "$(now)") s"
for _ in $(seq 240); do
    [ "$(extents autodefrag)" -le 8 ] && break
    sleep 0.5
done
echo "  autodefrag done $(secs "$start" "$(now)") s after the read began"
auto_after=$(cold_read autodefrag)
printf '%-34s %10s %8s %8s\n' "after autodefrag" "$auto_after" "$(extents autodefrag)" "$(ratio "$auto_after" "$contig")"
umount_it
