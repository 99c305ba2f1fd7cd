#!/usr/bin/env bash
# Snapshot timings (issue 10): `pagelog-snapshot create` on a running mount
# holding 1 GiB and then 10 GiB of data (target: under 10 ms, flat);
# `list` of 10,000 retained checkpoints (target: under 100 ms); mounting a
# snapshot, offline and beside the live mount (target: under 1 s); `diff`
# of two snapshots of the 100,000-file fill-tree.sh tree that differ in
# 100 files (target: under 1 s); fsck --fast and the full check with the
# 10,000 checkpoints. Medians of RUNS (default 5). Each time is
# the whole command (process start, socket, commit and flush included).
#   scripts/bench-snapshots.sh [RUNS]
# The image (12 GiB, sparse) lives in /var/tmp and is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
scripts/deps.sh
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh snapbench
IMG=$WORK/bench.img
SNAP=$WORK/snap
mkdir -p "$SNAP"
ms() { echo $(( ($2 - $1) / 1000000 )); }

"$BIN/pagelog-mkfs" "$IMG" --size 12G -q
# Every commit retained: the 10,000 checkpoints below come from 10,000 fsyncs.
"$BIN/pagelog-mount" -o checkpoint_interval=0 "$IMG" "$MNT"

fill_to() { # GiB
    local have
    have=$(find "$MNT" -maxdepth 1 -name 'fill-*' | wc -l)
    for i in $(seq "$have" $(($1 - 1))); do
        dd if=/dev/zero of="$MNT/fill-$i" bs=1M count=1024 conv=fsync status=none
    done
}
create_times() { # label
    for i in $(seq "$RUNS"); do
        echo "change $i" > "$MNT/changing"
        local t0 t1
        t0=$(now)
        "$BIN/pagelog-snapshot" create "$MNT" "$1-$i" > /dev/null
        t1=$(now)
        ms "$t0" "$t1"
    done | median
}

fill_to 1
echo "create at 1 GiB: $(create_times one) ms (median of $RUNS)"
fill_to 10
echo "create at 10 GiB: $(create_times ten) ms (median of $RUNS)"

echo "making 10,000 retained checkpoints (one fsync each)..."
python3 - "$MNT/tick" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
for i in range(10000):
    os.pwrite(fd, str(i).encode(), 0)
    os.fsync(fd)
os.close(fd)
EOF
for i in $(seq "$RUNS"); do
    t0=$(now); "$BIN/pagelog-snapshot" mount "$MNT" ten-1 "$SNAP" > /dev/null; t1=$(now)
    ms "$t0" "$t1"
    umount "$SNAP"
    sleep 0.2
done | median | xargs -I{} echo "mount of a snapshot beside the live mount (10 GiB): {} ms (median of $RUNS)"

COUNT=$("$BIN/pagelog-snapshot" list "$MNT" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["checkpoints"]))')
for i in $(seq "$RUNS"); do
    t0=$(now); "$BIN/pagelog-snapshot" list "$MNT" --json > /dev/null; t1=$(now); ms "$t0" "$t1"
done | median | xargs -I{} echo "list of $COUNT checkpoints, online: {} ms (median of $RUNS)"

umount "$MNT"
sleep 1
for i in $(seq "$RUNS"); do
    t0=$(now); "$BIN/pagelog-snapshot" list "$IMG" --json > /dev/null; t1=$(now); ms "$t0" "$t1"
done | median | xargs -I{} echo "list of $COUNT checkpoints, offline (opens the image): {} ms (median of $RUNS)"
for i in $(seq "$RUNS"); do
    t0=$(now); "$BIN/pagelog-mount" -o ro,snapshot=ten-1 "$IMG" "$SNAP"; t1=$(now)
    ms "$t0" "$t1"
    umount "$SNAP"
    sleep 0.2
done | median | xargs -I{} echo "mount of a snapshot (10 GiB, $COUNT checkpoints): {} ms (median of $RUNS)"
for i in $(seq "$RUNS"); do
    t0=$(now); "$BIN/pagelog-fsck" --fast -q "$IMG"; t1=$(now); ms "$t0" "$t1"
done | median | xargs -I{} echo "fsck --fast (10 GiB, $COUNT checkpoints): {} ms (median of $RUNS)"
t0=$(now)
"$BIN/pagelog-fsck" -q "$IMG"
t1=$(now)
echo "fsck, full check, clean (10 GiB, $COUNT checkpoints, each snapshot's tree walked): $(ms "$t0" "$t1") ms"

# diff: a second image with the 100,000-file tree, two snapshots 100
# changed files apart.
IMG2=$WORK/tree.img
"$BIN/pagelog-mkfs" "$IMG2" --size 4G -q
"$BIN/pagelog-mount" "$IMG2" "$MNT"
FILL_LARGE_TOTAL=$((64 << 20)) ../shared/bench/fill-tree.sh "$MNT" 100000 1 > /dev/null
"$BIN/pagelog-snapshot" create "$MNT" tree-a > /dev/null
find "$MNT" -type f | sed -n 1,100p | while read -r f; do echo changed >> "$f"; done
"$BIN/pagelog-snapshot" create "$MNT" tree-b > /dev/null
LINES=$("$BIN/pagelog-snapshot" diff "$MNT" tree-a tree-b | grep -c '^M')
for i in $(seq "$RUNS"); do
    t0=$(now); "$BIN/pagelog-snapshot" diff "$MNT" tree-a tree-b > /dev/null; t1=$(now)
    ms "$t0" "$t1"
done | median | xargs -I{} echo "diff of two snapshots of 100,000 files, 100 changed ($LINES M lines): {} ms (median of $RUNS)"
umount "$MNT"
