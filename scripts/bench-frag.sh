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
# pages too), then `dd bs=1M` reads the file. Each series starts with one
# such read that is not counted: on this virtual machine the first read
# of freshly written data is slower than later ones (the host's cache,
# which a guest cannot drop; bench-fsck.sh says the same), and moved data
# is freshly written. Printed: MB/s (median of RUNS), the extents
# pagelog-frag reports, and each read's ratio to the contiguous file's.
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

# The extents of FILE, as the daemon counts them (a dry run of --defrag).
extents() { # file
    "$BIN/pagelog-frag" --defrag --dry-run --json "$MNT/$1" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["files"][0]["before"]["extents"])'
}

# One cold read of FILE: MB/s.
read_once() { # file
    umount_it
    drop
    mount_it
    dd if="$MNT/$1" of=/dev/null bs=1M 2>&1 | tail -1 |
        awk '{for (i = 1; i <= NF; i++) if ($i ~ /^[MG]B\/s$/) print ($i == "GB/s" ? $(i-1) * 1000 : $(i-1))}'
}

# Cold sequential reads of FILE and of the contiguous file, in turn
# (RUNS each, after one of each that is not counted): "FILE_MB/s
# CONTIGUOUS_MB/s", medians. The anchor is read in the same minutes as
# the file, so that the ratio does not follow the host's moods (its disk
# and its cache, which a guest cannot drop, vary by tens of percent over
# a run here).
series() { # file
    local i a b
    for i in $(seq 0 "$RUNS"); do
        a=$(read_once "$1")
        b=$(read_once contiguous)
        [ "$i" -eq 0 ] || echo "$a $b"
    done > "$WORK/series"
    echo "$(awk '{print $1}' "$WORK/series" | median) $(awk '{print $2}' "$WORK/series" | median)"
}

line() { # label file
    local r
    r=$(series "$2")
    set -- "$1" "$2" $r
    printf '%-28s %9s %9s %8s %8s\n' "$1" "$3" "$4" "$(extents "$2")" "$(ratio "$3" "$4")"
}

mount_it
echo "writing the contiguous file and two fragmented ones ($OVERWRITES overwrites each)"
dd if=/dev/urandom of="$MNT/contiguous" bs=1M count=1024 conv=fsync status=none
fragment "$MNT/fragmented"
fragment "$MNT/autodefrag"
sleep 6
printf '%-28s %9s %9s %8s %8s\n' read MB/s anchor extents ratio
line "fragmented" fragmented
start=$(now)
"$BIN/pagelog-frag" --defrag "$MNT/fragmented" | tail -1
echo "  --defrag took $(secs "$start" "$(now)") s"
line "after --defrag" fragmented
line "second file, fragmented" autodefrag
umount_it
drop
mount_it -o autodefrag
start=$(now)
dd if="$MNT/autodefrag" of=/dev/null bs=1M status=none
echo "  the read that triggers autodefrag took $(secs "$start" "$(now)") s"
for _ in $(seq 240); do
    "$BIN/pagelog-frag" --defrag --dry-run --json "$MNT/autodefrag" | python3 -c '
import json, sys
b = json.load(sys.stdin)["files"][0]["before"]
sys.exit(0 if b["extents"] <= b["ideal"] else 1)' && break
    sleep 0.5
done
echo "  autodefrag done $(secs "$start" "$(now)") s after the read began"
line "after autodefrag" autodefrag
umount_it
