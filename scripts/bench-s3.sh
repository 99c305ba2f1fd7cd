#!/usr/bin/env bash
# The S3 segment store against a local image (issue 15), in one run on the
# same disk: a three-node Garage cluster on loopback (replication factor 3,
# scripts/garage.sh) holding the segments, beside a preallocated 4 GiB
# image. For each: a 1 GiB file written sequentially (1 MiB writes, then
# fsync); read cold (unmounted, host caches dropped, and for the store a
# new, empty cache: every segment comes from the cluster); read warm (host
# caches dropped, the mount kept: the store's segments come from its cache
# file); and metadata operations (2,000 files created, stat'ed, removed).
# Also the bytes uploaded per byte written, as pagelog.stats counts them.
# Prints seconds and MiB/s, and the store's share of the local figure;
# medians of RUNS (default 3).
#   scripts/bench-s3.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
scripts/deps.sh --bench
scripts/garage.sh build
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh s3bench
GARAGE_DIR=$WORK/garage
trap 'scripts/garage.sh stop "$GARAGE_DIR"; cleanup' EXIT
scripts/garage.sh start "$GARAGE_DIR"
export PAGELOG_STORE_CONFIG=$GARAGE_DIR/store.toml
export PAGELOG_CACHE_DIR=$WORK/cache
export PAGELOG_CACHE_SIZE=2G

stat_of() { # key
    getfattr --only-values -n pagelog.stats "$MNT" 2>/dev/null | awk -v k="$1:" '$1 == k {print $2}'
}

# One round on TARGET (local or s3): prints write, cold and warm MiB/s,
# the metadata seconds, and uploaded MiB per MiB written.
run() {
    local t=$1 src t0 t1 w c wm m up
    if [ "$t" = local ]; then
        src=$WORK/p.img
        "$BIN/pagelog-mkfs" "$src" --size 4G -q --preallocate
    else
        src=s3://pagelog/bench-$RANDOM$RANDOM
        "$BIN/pagelog-mkfs" --store "$src" --size 4G -q
    fi
    "$BIN/pagelog-mount" "$src" "$MNT"
    t0=$(now)
    dd if=/dev/urandom of="$MNT/seq" bs=1M count=1024 conv=fsync status=none
    t1=$(now)
    w=$(awk -v s="$(secs "$t0" "$t1")" 'BEGIN {printf "%.0f", 1024 / s}')
    up=$(stat_of store_uploaded_mib)
    up=$(awk -v u="${up:-0}" 'BEGIN {printf "%.2f", u / 1024}')
    pagelog_umount "$src" "$MNT"
    drop
    "$BIN/pagelog-mount" "$src" "$MNT"
    t0=$(now)
    dd if="$MNT/seq" of=/dev/null bs=1M status=none
    t1=$(now)
    c=$(awk -v s="$(secs "$t0" "$t1")" 'BEGIN {printf "%.0f", 1024 / s}')
    drop
    t0=$(now)
    dd if="$MNT/seq" of=/dev/null bs=1M status=none
    t1=$(now)
    wm=$(awk -v s="$(secs "$t0" "$t1")" 'BEGIN {printf "%.0f", 1024 / s}')
    t0=$(now)
    mkdir "$MNT/meta"
    (cd "$MNT/meta" && for i in $(seq 2000); do : > "f$i"; done && stat ./* > /dev/null && rm -f ./*)
    t1=$(now)
    m=$(secs "$t0" "$t1")
    pagelog_umount "$src" "$MNT"
    rm -f "$WORK/p.img"
    echo "$w $c $wm $m $up"
}

TARGETS="local s3"
rounds "$RUNS"
printf '%-34s %10s %10s %8s\n' "" local s3 "s3/local"
row() { # label column unit
    local l s
    l=$(col local "$2")
    s=$(col s3 "$2")
    printf '%-34s %10s %10s %8s\n' "$1 ($3)" "$l" "$s" "$(ratio "$s" "$l")"
}
row "sequential write 1 GiB + fsync" 1 MiB/s
row "cold read 1 GiB" 2 MiB/s
row "warm read 1 GiB" 3 MiB/s
row "2,000 files created, stat, removed" 4 s
echo "uploaded per byte written (s3): $(col s3 5)"
echo "(medians of $RUNS)"
