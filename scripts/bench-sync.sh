#!/usr/bin/env bash
# What ../shared/bench/compare.sh does not measure and issue 13 asks for,
# side by side in one run on the same disk: pagelog (default mount: fsync by
# roll-forward record), pagelog with fsync=commit (every fsync a checkpoint,
# as before roll-forward), a FUSE passthrough (bindfs with big writes over a
# directory) and kernel ext4 on a loop image. Workloads, each on a fresh target:
#   fsync-rand   4 KiB random writes, fsync after each (fio --fsync=1), IOPS
#   fdsync-app   4 KiB appends, fdatasync after each (a mail spool), IOPS
#   sqlite       one row per transaction, WAL, synchronous=FULL, rows/s
#   postmark     2,000 files, 20,000 transactions, tx/s
#   readers4     4 parallel cold sequential readers of 256 MiB each, MiB/s
# The pagelog images are made with --preallocate, as fio lays out its files
# on the anchors before the timed part: otherwise each fsync also waits for
# the filesystem under the image to allocate the blocks the log writes to.
# Medians of RUNS (default 3), targets interleaved; ratios are pagelog's to
# each anchor (above 1: pagelog faster).
#   scripts/bench-sync.sh [RUNS] [SECONDS]   (SECONDS per fio job, default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECS=${2:-10}
scripts/deps.sh --bench
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh syncbench
TARGETS="pagelog plcommit bindfs ext4"

up() { # target -> the directory to work in
    case $1 in
    plcommit) target_up pagelog -o fsync=commit ;;
    *) target_up "$1" ;;
    esac
}

down() {
    case $1 in
    plcommit) target_down pagelog ;;
    *) target_down "$1" ;;
    esac
}

# fio's figure for a run of jobs named NAME: IOPS of their writes, or MiB/s
# of their reads, together.
fio_job() { # dir iops|read name fio-args...
    local dir=$1 what=$2 name=$3
    shift 3
    fio --name="$name" --directory="$dir" --ioengine=psync --output-format=json "$@" \
        | python3 -c '
import json, sys
what = sys.argv[1]
jobs = json.load(sys.stdin)["jobs"]
if what == "iops":
    print(round(sum(j["write"]["iops"] for j in jobs)))
else:
    print(round(sum(j["read"]["bw_bytes"] for j in jobs) / 2**20))
' "$what"
}

sqlite_rows() { # dir -> rows per second
    python3 - "$1" <<'EOF'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1] + "/bench.db", isolation_level=None)
db.execute("pragma journal_mode=wal")
db.execute("pragma synchronous=full")
db.execute("create table t (id integer primary key, v text)")
n, t0 = 2000, time.monotonic()
for i in range(n):
    db.execute("begin")
    db.execute("insert into t (v) values (?)", ("x" * 100,))
    db.execute("commit")
print(round(n / (time.monotonic() - t0)))
EOF
}

postmark_tx() { # dir -> transactions per second, as postmark says it
    printf 'set location %s\nset number 2000\nset transactions 20000\nrun\nquit\n' "$1" \
        | postmark | sed -n 's/.*seconds of transactions (\([0-9]*\) per second).*/\1/p'
}

readers4() { # dir -> MiB/s of four cold readers together
    fio --name=lay --directory="$1" --rw=write --bs=1M --size=256M --numjobs=4 \
        --end_fsync=1 --output-format=terse > /dev/null
    drop
    fio_job "$1" read lay --rw=read --bs=1M --size=256M --numjobs=4
}

run() { # target -> "fsync-rand fdsync-app sqlite postmark readers4"
    local d out=()
    d=$(up "$1")
    out+=("$(fio_job "$d" iops job --rw=randwrite --bs=4k --size=64M --fsync=1 --runtime="$SECS" --time_based)")
    rm -f "$d"/job.*
    out+=("$(fio_job "$d" iops job --rw=write --bs=4k --size=1G --fdatasync=1 --runtime="$SECS" --time_based)")
    rm -f "$d"/job.*
    out+=("$(sqlite_rows "$d")")
    mkdir "$d/pm"
    out+=("$(postmark_tx "$d/pm")")
    out+=("$(readers4 "$d")")
    down "$1"
    echo "${out[*]}"
}

rounds "$RUNS"
echo
echo "== medians of $RUNS =="
printf '%-8s %12s %12s %10s %10s %12s\n' target fsync-rand fdsync-app sqlite postmark readers4
for t in $TARGETS; do
    printf '%-8s %12s %12s %10s %10s %12s\n' "$t" "$(col "$t" 1)" "$(col "$t" 2)" \
        "$(col "$t" 3)" "$(col "$t" 4)" "$(col "$t" 5)"
done
echo "(IOPS, IOPS, rows/s, tx/s, MiB/s)"
for a in plcommit bindfs ext4; do
    printf 'pagelog / %-7s' "$a"
    for c in 1 2 3 4 5; do
        printf ' %s' "$(ratio "$(col pagelog "$c")" "$(col "$a" "$c")")"
    done
    echo
done
