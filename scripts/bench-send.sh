#!/usr/bin/env bash
# pagelog-snapshot send to a three-node Garage cluster on loopback
# (replication factor 3, scripts/garage.sh), beside the cluster's own
# upload speed in the same run. A 4 GiB image holds a 1 GiB file and
# snapshot s1; s1 is sent (everything is new to the copy); then 16 MiB
# are added, 1 MiB of the big file rewritten, snapshot s2 sent to the same
# place (what the copy lacks); then the copy is mounted read-only on an
# empty cache and the big file read cold. The anchor: the same cluster
# taking 1 GiB of 2 MiB objects, four PUTs at once, from Python's boto3
# (skipped, and said, when boto3 is missing). Medians of RUNS (default 1).
#   scripts/bench-send.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-1}
scripts/deps.sh --bench
scripts/garage.sh build
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh sendbench
GARAGE_DIR=$WORK/garage
trap 'scripts/garage.sh stop "$GARAGE_DIR"; cleanup' EXIT
scripts/garage.sh start "$GARAGE_DIR"
export PAGELOG_STORE_CONFIG=$GARAGE_DIR/store.toml
export PAGELOG_CACHE_DIR=$WORK/cache
COPY_MNT=$WORK/copy
mkdir -p "$COPY_MNT"

field() { # json key
    python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

# One round: prints full-send MiB/s, its uploaded MiB, incremental-send
# seconds, its uploaded MiB, and the copy's cold read MiB/s.
run() {
    local img=$WORK/p.img copy=s3://pagelog-copy/bench-$RANDOM$RANDOM t0 t1 out full fup inc iup cold
    "$BIN/pagelog-mkfs" "$img" --size 4G -q --preallocate
    "$BIN/pagelog-mount" "$img" "$MNT"
    dd if=/dev/urandom of="$MNT/seq" bs=1M count=1024 conv=fsync status=none
    "$BIN/pagelog-snapshot" create "$MNT" s1 > /dev/null
    t0=$(now)
    out=$("$BIN/pagelog-snapshot" send "$img" s1 --to "$copy" --json)
    t1=$(now)
    fup=$(awk -v b="$(field "$out" uploaded_bytes)" 'BEGIN {printf "%.0f", b / 1048576}')
    full=$(awk -v m="$fup" -v s="$(secs "$t0" "$t1")" 'BEGIN {printf "%.0f", m / s}')
    dd if=/dev/urandom of="$MNT/new" bs=1M count=16 conv=fsync status=none
    dd if=/dev/urandom of="$MNT/seq" bs=1M count=1 seek=512 conv=notrunc,fsync status=none
    "$BIN/pagelog-snapshot" create "$MNT" s2 > /dev/null
    t0=$(now)
    out=$("$BIN/pagelog-snapshot" send "$img" s2 --to "$copy" --json)
    t1=$(now)
    inc=$(secs "$t0" "$t1")
    iup=$(awk -v b="$(field "$out" uploaded_bytes)" 'BEGIN {printf "%.1f", b / 1048576}')
    pagelog_umount "$img" "$MNT"
    drop
    "$BIN/pagelog-mount" -o ro "$copy" "$COPY_MNT"
    t0=$(now)
    dd if="$COPY_MNT/seq" of=/dev/null bs=1M status=none
    t1=$(now)
    cold=$(awk -v s="$(secs "$t0" "$t1")" 'BEGIN {printf "%.0f", 1024 / s}')
    pagelog_umount "$copy" "$COPY_MNT"
    rm -f "$img"
    echo "$full $fup $inc $iup $cold"
}

# The cluster's own upload speed: 1 GiB in 2 MiB objects, four at once.
anchor() {
    python3 - "$PAGELOG_STORE_CONFIG" <<'EOF'
import concurrent.futures, os, sys, time, tomllib
try:
    import boto3
except ImportError:
    print("-")
    sys.exit(0)
cfg = tomllib.load(open(sys.argv[1], "rb"))
s3 = boto3.client("s3", endpoint_url=cfg["endpoint"], region_name=cfg["region"],
                  aws_access_key_id=cfg["access_key_id"],
                  aws_secret_access_key=cfg["secret_access_key"])
blob = os.urandom(2 << 20)
t0 = time.time()
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    list(pool.map(lambda i: s3.put_object(Bucket="pagelog-copy", Key=f"anchor/{i}", Body=blob),
                  range(512)))
print(round(1024 / (time.time() - t0)))
EOF
}

TARGETS="send"
rounds "$RUNS"
a=$(anchor)
full=$(col send 1)
echo "full send of a 1 GiB snapshot: $full MiB/s ($(col send 2) MiB uploaded);" \
    "the cluster takes $a MiB/s from boto3: $( [ "$a" = - ] && echo - || ratio "$full" "$a")"
echo "incremental send (16 MiB added, 1 MiB rewritten): $(col send 3) s, $(col send 4) MiB uploaded"
echo "cold read of the copy (1 GiB, empty cache): $(col send 5) MiB/s"
echo "(medians of $RUNS)"
