#!/usr/bin/env bash
# The kernel's writeback cache in the default `ordered` mode (issue 13, item
# 2), measured with ../shared/bench/fsbench.sh side by side in one run on the
# same disk: pagelog as mounted by default (the cache on), pagelog with
# `-o no_writeback_cache` (every write(2) a FUSE request, as before), a FUSE
# passthrough (bindfs with big writes over a directory) and kernel ext4 on a
# loop image. fsbench's phases: 1 GiB sequential write + fsync and cold read,
# 4 KiB random read and buffered random write (256 MiB file, 20 s, final
# fsync), 20,000 files created, stat-ed cold and deleted. A cache drop
# remounts pagelog, so its reads after a drop are cold for its own cache too.
# Medians of RUNS (default 2), targets interleaved; ratios are pagelog's to
# each of the others (above 1: pagelog faster).
#   scripts/bench-cache.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-2}
FSBENCH=$(realpath ../shared/bench/fsbench.sh)
scripts/deps.sh --bench
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh cachebench
TARGETS="pagelog plnocache bindfs ext4"
METRICS="seqwrite_1M seqread_1M randread_4k randwrite_4k meta_create meta_stat_cold meta_delete"

opts() { # target -> pagelog-mount options
    case $1 in
    plnocache) echo "-o no_writeback_cache" ;;
    *) echo "" ;;
    esac
}

up() { # target -> the directory to work in
    case $1 in
    # shellcheck disable=SC2046
    pagelog | plnocache) target_up pagelog $(opts "$1") ;;
    *) target_up "$1" ;;
    esac
}

down() {
    case $1 in
    pagelog | plnocache) target_down pagelog ;;
    *) target_down "$1" ;;
    esac
}

# After fsbench drops the caches, a pagelog target is remounted (its own
# caches dropped too), waiting for the daemon to be gone first.
drop_hook() { # target
    case $1 in
    pagelog | plnocache)
        echo "umount '$MNT' && while pgrep -f '[p]agelog-mount.* $WORK/p.img' > /dev/null; do sleep 0.1; done && '$BIN/pagelog-mount' $(opts "$1") '$WORK/p.img' '$MNT' && sleep 0.3" ;;
    *) echo "" ;;
    esac
}

run() { # target -> one line, the metrics in the order of $METRICS
    local d line=() m
    d=$(up "$1")
    FSB_DROP_HOOK=$(drop_hook "$1") "$FSBENCH" -n "$1" "$d" > "$WORK/out" 2> "$WORK/err" \
        || { cat "$WORK/err" >&2; exit 1; }
    for m in $METRICS; do
        line+=("$(awk -v m="$m" '$2 == m {print $3}' "$WORK/out")")
    done
    down "$1"
    echo "${line[*]}"
}

rounds "$RUNS"
echo
echo "== medians of $RUNS =="
printf '%-10s' target
for m in $METRICS; do printf ' %15s' "$m"; done
echo
for t in $TARGETS; do
    printf '%-10s' "$t"
    for c in $(seq 1 7); do printf ' %15s' "$(col "$t" "$c")"; done
    echo
done
echo "(MiB/s, MiB/s, IOPS, IOPS, ops/s, ops/s, ops/s)"
for a in plnocache bindfs ext4; do
    printf 'pagelog / %-10s' "$a"
    for c in $(seq 1 7); do printf ' %s' "$(ratio "$(col pagelog "$c")" "$(col "$a" "$c")")"; done
    echo
done
