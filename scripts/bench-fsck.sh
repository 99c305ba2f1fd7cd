#!/usr/bin/env bash
# The checker's and recovery's benchmark (issue 3).
#
# Check: the same 100,000-file tree (../shared/bench/fill-tree.sh) in a
# pagelog image and in an ext4 image; caches dropped before every run,
# pagelog-fsck --fast, the full check and --verify-data are timed beside
# `e2fsck -f -n`, interleaved, and the medians, peak memory and the ratio
# of the full check to e2fsck are printed.
#
# Recovery: a mount with a long commit interval writes N MiB (data goes to
# the log at dirty_limit; a commit follows whenever 256 MiB were logged
# since the last one), the daemon is killed with SIGKILL, caches are
# dropped and a read-only mount, which walks the log after the last
# checkpoint and checks every page's CRC, is timed; beside it, caches
# dropped again, `dd` reading as many bytes as that log (the disk's own
# time for them). N = 64 and 1024. On this virtual machine the first read
# of freshly written data is several times slower than later ones (the
# host's cache, which a guest cannot drop), so the image is read once
# before both timings: they compare like with like.
#
#   scripts/bench-fsck.sh [RUNS]        (default 10 runs of each check)
#
# The two tree images are made once in $PAGELOG_BENCH_DIR (default
# /var/tmp/pagelog-fsck-bench) and kept: filling them takes minutes.
# Delete the directory to rebuild them (after a format change, say).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
DIR=${PAGELOG_BENCH_DIR:-/var/tmp/pagelog-fsck-bench}
FILL=$PWD/../shared/bench/fill-tree.sh
[ -x "$FILL" ] || { echo "bench-fsck: $FILL not found" >&2; exit 1; }
scripts/deps.sh
command -v e2fsck >/dev/null || apt-get install -y -q e2fsprogs
[ -x /usr/bin/time ] || apt-get install -y -q time
cargo build --release -p pagelog-mkfs -p pagelog-fuse -p pagelog-fsck
BIN=$PWD/target/release
PL=$DIR/pagelog.img
E4=$DIR/ext4.img
MNT=$DIR/mnt
mkdir -p "$MNT"
cleanup() {
    mountpoint -q "$MNT" && umount -l "$MNT"
    rm -f "$DIR/recovery.img" "$DIR/times"
}
trap cleanup EXIT

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

if [ ! -f "$PL.done" ]; then
    echo "filling $PL (once)"
    rm -f "$PL"
    "$BIN/pagelog-mkfs" "$PL" --size 2560M -q
    "$BIN/pagelog-mount" "$PL" "$MNT"
    "$FILL" "$MNT" 100000 1
    umount "$MNT"
    touch "$PL.done"
fi
if [ ! -f "$E4.done" ]; then
    echo "filling $E4 (once)"
    rm -f "$E4"
    truncate -s 2560M "$E4"
    mkfs.ext4 -q -F "$E4"
    mount -o loop "$E4" "$MNT"
    "$FILL" "$MNT" 100000 1
    umount "$MNT"
    touch "$E4.done"
fi

# One timed, cold run: label, then the command. Appends "label secs KiB".
timed() {
    local label=$1
    shift
    drop_caches
    # fsck exits 1 or 4 on a finding: the figure is still a time, but say so.
    /usr/bin/time -o "$DIR/time.1" -f "%e %M" "$@" >/dev/null 2>&1 ||
        echo "bench-fsck: $label exited non-zero (findings?): $*" >&2
    echo "$label $(tail -n 1 "$DIR/time.1")" >>"$DIR/times"
}

rm -f "$DIR/times"
for _ in $(seq "$RUNS"); do
    timed fast "$BIN/pagelog-fsck" -n --fast "$PL"
    timed full "$BIN/pagelog-fsck" -n "$PL"
    timed e2fsck e2fsck -f -n "$E4"
    timed verify "$BIN/pagelog-fsck" -n --verify-data "$PL"
done
rm -f "$DIR/time.1"

median() { # label field -> median of that field over the runs
    awk -v l="$1" -v f="$2" '$1 == l { print $f }' "$DIR/times" | sort -n |
        awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}
echo
echo "check of the 100,000-file tree, caches dropped, median of $RUNS runs:"
for l in fast full e2fsck verify; do
    awk -v l="$l" -v t="$(median "$l" 2)" -v k="$(median "$l" 3)" \
        'BEGIN { printf "  %-8s %6.3f s  %6.1f MiB peak\n", l, t, k / 1024 }'
done
awk -v a="$(median full 2)" -v b="$(median e2fsck 2)" \
    'BEGIN { printf "  full check / e2fsck: %.2f (target <= 1.00)\n", a / b }'
read_mib=$("$BIN/pagelog-fsck" -n --verify-data "$PL" | sed -n 's/.*; \([0-9]*\) MiB read.*/\1/p')
awk -v m="$read_mib" -v t="$(median verify 2)" \
    'BEGIN { printf "  --verify-data: %d MiB read, %.0f MiB/s\n", m, m / t }'

# Recovery after a crash with $1 MiB written since the last commit timer.
recovery() {
    local img=$DIR/recovery.img
    rm -f "$img"
    "$BIN/pagelog-mkfs" "$img" --size 4G -q
    # Without the kernel's writeback cache, so that every byte written
    # reaches the daemon before the kill (with it, what the kernel still
    # held would die with the mount, and the log to walk would be short).
    "$BIN/pagelog-mount" -o commit=3600,dirty_limit=16M,no_writeback_cache "$img" "$MNT"
    head -c "$(($1 << 20))" /dev/urandom >"$MNT/f"
    pkill -KILL -f "pagelog-mount.* $img"
    sleep 0.5
    umount -l "$MNT"
    cat "$img" >/dev/null
    drop_caches
    local start mounted log read
    start=$(date +%s.%N)
    "$BIN/pagelog-mount" -o ro "$img" "$MNT"
    mounted=$(date +%s.%N)
    umount "$MNT"
    log=$("$BIN/pagelog-fsck" -n --fast "$img" 2>/dev/null | sed -n 's/.*; \([0-9]*\) MiB read.*/\1/p')
    drop_caches
    read=$( { /usr/bin/time -f "%e" dd if="$img" of=/dev/null bs=1M count="$log" status=none; } 2>&1)
    awk -v a="$start" -v b="$mounted" -v n="$1" -v l="$log" -v r="$read" \
        'BEGIN { printf "  %5d MiB written, %4d MiB of log to walk: mounted in %.2f s (dd of %d MiB: %.2f s)\n", n, l, b - a, l, r }'
    rm -f "$img"
}
echo
echo "recovery (read-only mount after SIGKILL, caches dropped):"
recovery 64
recovery 1024
