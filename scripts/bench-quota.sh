#!/usr/bin/env bash
# What quotas cost (issue 12), side by side in one run: an image made with
# quotas (the default), the same with limits on the writer's user and group
# (root's, far from reached: every call is checked against them), and one
# made with --no-quota, on the two workloads of ../shared/bench/compare.sh
# the issue names: 20,000 empty files created (its metabench helper), and a
# 1 GiB sequential write with fsync. Medians of RUNS (default 3), the kinds
# interleaved; the ratios are against --no-quota (1.00: no cost).
#   scripts/bench-quota.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
scripts/deps.sh
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh quotabench
SHARED=$PWD/../shared/bench
gcc -O2 -Wall -o "$WORK/metabench" "$SHARED/metabench.c"
head -c 1G /dev/urandom > "$WORK/src"

run() { # kind -> "create_ops write_MiBps"
    local img=$WORK/$1.img out t0 t1
    rm -f "$img"
    case $1 in
    noquota) "$BIN/pagelog-mkfs" "$img" --size 4G -q --no-quota ;;
    quota) "$BIN/pagelog-mkfs" "$img" --size 4G -q ;;
    limits)
        "$BIN/pagelog-mkfs" "$img" --size 4G -q
        "$BIN/pagelog-quota" set "$img" -u 0 --block-hard 100G --inode-hard 10000000 > /dev/null
        "$BIN/pagelog-quota" set "$img" -g 0 --block-hard 100G --inode-hard 10000000 > /dev/null
        ;;
    esac
    "$BIN/pagelog-mount" "$img" "$MNT"
    mkdir "$MNT/m"
    out=$("$WORK/metabench" "$MNT/m" 20000 create)
    cat "$WORK/src" > /dev/null
    t0=$(now)
    dd if="$WORK/src" of="$MNT/big" bs=1M conv=fsync status=none
    t1=$(now)
    umount "$MNT"
    "$BIN/pagelog-fsck" -n "$img" > /dev/null
    rm -f "$img"
    echo "$(printf '%s' "$out" | awk '{print $2}') $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", 1024 / ((b - a) / 1e9)}')"
}

declare -A R
for i in $(seq "$RUNS"); do
    for kind in noquota quota limits; do
        R[$kind]+="$(run $kind)"$'\n'
    done
    echo "run $i of $RUNS done"
done
echo
echo "== medians of $RUNS =="
for kind in noquota quota limits; do
    echo "$kind: create $(col "$kind" 1) files/s, sequential write $(col "$kind" 2) MiB/s"
done
for kind in quota limits; do
    echo "$kind / no quota: create $(ratio "$(col $kind 1)" "$(col noquota 1)")," \
        "sequential write $(ratio "$(col $kind 2)" "$(col noquota 2)") (target >= 0.95)"
done
