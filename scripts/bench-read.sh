#!/usr/bin/env bash
# Sequential read against the raw disk (issue 13, item 4), in one run on
# the same disk: a 1 GiB file written sequentially into a preallocated
# pagelog image, read cold with 1 MiB requests (fio, psync, one job; the
# mount remounted and the host's caches dropped first), beside the disk's
# own speed: the same image file read with O_DIRECT in 1 MiB requests
# (the kernel's page cache out of the way, as a raw device read). Also the
# file read by four readers at once (each a quarter), and with a larger
# kernel readahead window (`-o readahead=4M`). Prints MiB/s and
# pagelog's share of the raw figure; medians of RUNS (default 3).
#   scripts/bench-read.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
scripts/deps.sh --bench
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh readbench
COMMON=(--ioengine=psync --iodepth=1 --thread --group_reporting --output-format=terse --terse-version=3)
# fio's terse v3: field 7 is the read bandwidth in KiB/s.
mib() { awk -F';' '{s += $7} END {printf "%.0f", s / 1024}'; }

cold() { # pagelog-mount arguments...
    pagelog_umount "$WORK/p.img" "$MNT"
    drop
    "$BIN/pagelog-mount" "$@" "$WORK/p.img" "$MNT"
}

for i in $(seq "$RUNS"); do
    d=$(target_up pagelog)
    fio --name=w "${COMMON[@]}" --filename="$d/seq" --rw=write --bs=1M --size=1G \
        --end_fsync=1 --refill_buffers > /dev/null
    cold
    R[one]+="$(fio --name=r "${COMMON[@]}" --filename="$d/seq" --rw=read --bs=1M --size=1G | mib)"$'\n'
    cold
    R[four]+="$(fio --name=r4 "${COMMON[@]}" --filename="$d/seq" --rw=read --bs=1M --size=1G \
        --numjobs=4 --offset_increment=256M --io_size=256M | mib)"$'\n'
    cold -o readahead=4M
    R[ra4m]+="$(fio --name=ra "${COMMON[@]}" --filename="$d/seq" --rw=read --bs=1M --size=1G | mib)"$'\n'
    pagelog_umount "$WORK/p.img" "$MNT"
    drop
    # The image's first gibibyte, read as a device is: where the log put
    # the file (segments are written from the start of the area).
    R[raw]+="$(fio --name=raw "${COMMON[@]}" --filename="$WORK/p.img" --direct=1 --rw=read \
        --bs=1M --size=1G --readonly | mib)"$'\n'
    rm -f "$WORK/p.img"
done
one=$(printf '%s' "${R[one]}" | median)
raw=$(printf '%s' "${R[raw]}" | median)
printf 'raw disk (O_DIRECT, 1 MiB)   %6s MiB/s\n' "$raw"
for k in one four ra4m; do
    v=$(printf '%s' "${R[$k]}" | median)
    case $k in
    one) what="pagelog, one reader" ;;
    four) what="pagelog, four readers" ;;
    ra4m) what="pagelog, readahead=4M" ;;
    esac
    printf '%-28s %6s MiB/s  %s of raw\n' "$what" "$v" "$(ratio "$v" "$raw")"
done
echo "(medians of $RUNS; pagelog one reader / raw: $(ratio "$one" "$raw"))"
