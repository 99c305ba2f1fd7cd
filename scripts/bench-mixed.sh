#!/usr/bin/env bash
# Do readers wait for writers? (issue 13, item 3.) One fio run with two
# jobs at once for SECONDS (default 20): a reader of 4 KiB random reads
# from a 256 MiB file laid out first (cold: caches dropped, pagelog
# remounted), and a writer of 1 MiB sequential writes to another file,
# fsync after every 16 MiB (so commits and flushes keep coming). Printed:
# the reader's IOPS and its 99th and 99.9th percentile latency, beside the
# same reader alone; on pagelog, bindfs and ext4 in one run. Under one
# lock held across a commit, pagelog's reader tail grows with the writer.
# FSYNC_MIB (default 16) is how often the writer fsyncs, 0 for never (a
# streaming writer: then the kernel's writeback queue is what the reader
# waits behind); OPTIONS are pagelog-mount options (like
# "-o kernel_dirty=16M").
#   scripts/bench-mixed.sh [SECONDS] [FSYNC_MIB] [OPTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
FSYNC_MIB=${2:-16}
read -r -a OPTS <<< "${3:-}"
scripts/deps.sh --bench
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh mixedbench
COMMON=(--ioengine=psync --iodepth=1 --thread --output-format=json)
# The reader's IOPS and completion-latency percentiles, from fio's JSON.
reader_stats() {
    python3 -c '
import json, sys
txt = sys.stdin.read()
job = next(j for j in json.loads(txt[txt.index("{"):])["jobs"] if j["jobname"] == "reader")
r = job["read"]
p = r["clat_ns"]["percentile"]
print("%7d IOPS  p99 %7.0f us  p99.9 %7.0f us" % (r["iops"], p["99.000000"] / 1e3, p["99.900000"] / 1e3))
'
}

cold() { # kind
    drop
    if [ "$1" = pagelog ]; then
        pagelog_umount "$WORK/p.img" "$MNT"
        "$BIN/pagelog-mount" "${OPTS[@]}" "$WORK/p.img" "$MNT"
    fi
}

# Options after a job's --name are that job's.
reader=(--name=reader --rw=randread --bs=4k --size=256M --time_based --runtime="$SECS")
writer=(--name=writer --rw=write --bs=1M --size=2G --fsync="$FSYNC_MIB" --time_based --runtime="$SECS")
for kind in pagelog bindfs ext4; do
    d=$(target_up "$kind" "${OPTS[@]}")
    fio "${COMMON[@]}" --name=layout --filename="$d/r" --rw=write --bs=1M --size=256M \
        --end_fsync=1 > /dev/null
    cold "$kind"
    alone=$(fio "${COMMON[@]}" "${reader[@]}" --filename="$d/r" | reader_stats)
    cold "$kind"
    both=$(fio "${COMMON[@]}" "${reader[@]}" --filename="$d/r" \
        "${writer[@]}" --filename="$d/w" | reader_stats)
    printf '%-8s alone: %s\n%-8s with a writer: %s\n' "$kind" "$alone" "" "$both"
    target_down "$kind"
done
