#!/usr/bin/env bash
# What keeping usage by user, group and project costs (issue 12), side by
# side in one run: an image made with quotas (the default) against one made
# with --no-quota, on the two workloads of ../shared/bench/compare.sh the
# issue names: 20,000 empty files created (its metabench helper), and a
# 1 GiB sequential write with fsync. Medians of RUNS (default 3), the two
# kinds interleaved; the ratio is quota / no quota (1.00: no cost).
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
    if [ "$1" = quota ]; then
        "$BIN/pagelog-mkfs" "$img" --size 4G -q
    else
        "$BIN/pagelog-mkfs" "$img" --size 4G -q --no-quota
    fi
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
    for kind in noquota quota; do
        R[$kind]+="$(run $kind)"$'\n'
    done
    echo "run $i of $RUNS done"
done
echo
echo "== medians of $RUNS =="
for kind in noquota quota; do
    echo "$kind: create $(col "$kind" 1) files/s, sequential write $(col "$kind" 2) MiB/s"
done
echo "quota / no quota: create $(ratio "$(col quota 1)" "$(col noquota 1)")," \
    "sequential write $(ratio "$(col quota 2)" "$(col noquota 2)") (target >= 0.95)"
