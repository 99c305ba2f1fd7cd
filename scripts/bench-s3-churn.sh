#!/usr/bin/env bash
# Upload traffic per byte written when the cleaner works (issue 15): a
# 1 GiB filesystem on a three-node Garage cluster on loopback (replication
# factor 3, scripts/garage.sh), and the same on a local image in the same
# run. 600 files of 1 MiB, then ROUNDS (default 8) rounds of writing 150
# new ones and deleting 150 others at random, each round synced: about
# 1.8 GiB written through a 1 GiB volume holding 600 MiB, so the cleaner
# must copy what lives in the segments it empties. Prints what
# pagelog.stats counts: user data written, pages the log wrote (data,
# metadata, cleaning), segments cleaned, and on the store the bytes
# uploaded (superblocks, pieces and whole segments); each per byte of user
# data.
#   scripts/bench-s3-churn.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-8}
scripts/deps.sh --bench
scripts/garage.sh build
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh s3churn
GARAGE_DIR=$WORK/garage
trap 'scripts/garage.sh stop "$GARAGE_DIR"; cleanup' EXIT
scripts/garage.sh start "$GARAGE_DIR"
export PAGELOG_STORE_CONFIG=$GARAGE_DIR/store.toml
export PAGELOG_CACHE_DIR=$WORK/cache

stat_of() { # key
    getfattr --only-values -n pagelog.stats "$MNT" 2>/dev/null | awk -v k="$1:" '$1 == k {print $2}'
}

churn() {
    local r i
    mkdir "$MNT/d"
    for i in $(seq 600); do head -c 1M /dev/urandom > "$MNT/d/f$i"; done
    sync "$MNT/d/f600"
    for r in $(seq "$ROUNDS"); do
        for i in $(seq 150); do head -c 1M /dev/urandom > "$MNT/d/r$r-$i"; done
        find "$MNT/d" -type f | shuf -n 150 --random-source=<(yes "$r") | xargs rm -f
        sync "$MNT/d"
    done
}

# One target: prints user MiB, device MiB, segments cleaned, uploaded MiB.
run() {
    local t=$1 src
    if [ "$t" = local ]; then
        src=$WORK/p.img
        "$BIN/pagelog-mkfs" "$src" --size 1G -q --preallocate
    else
        src=s3://pagelog/churn-$RANDOM$RANDOM
        "$BIN/pagelog-mkfs" --store "$src" --size 1G -q
    fi
    "$BIN/pagelog-mount" -o protect=0 "$src" "$MNT"
    churn
    echo "$(stat_of user_written_mib) $(stat_of device_written_mib)" \
        "$(stat_of cleaner_segments_cleaned) $(stat_of store_uploaded_mib)"
    pagelog_umount "$src" "$MNT"
    rm -f "$WORK/p.img"
}

for t in local s3; do
    set -- $(run "$t")
    per() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
    echo "$t: user data written $1 MiB; the log wrote $2 MiB ($(per "$2" "$1") a byte)," \
        "$3 segments cleaned${4:+; uploaded $4 MiB ($(per "$4" "$1") a byte)}"
done
