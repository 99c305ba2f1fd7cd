#!/usr/bin/env bash
# Compression (issue 11), side by side in one run with plain pagelog:
#  1. a text corpus (this machine's /usr/share/doc and man pages, every
#     .gz decompressed): the space it takes on a `--compress zstd` image
#     (du, df) against a plain one, and against `zstd -3` run on the same
#     files one by one (counted in 4 KiB blocks, as any filesystem stores
#     them, and in bytes); the time to copy it in (cp -a, then fsync) and
#     to read it back cold (tar to /dev/null after a remount);
#  2. sequential write (1 GiB, dd conv=fsync) and cold read (after a
#     remount) of compressible data (the corpus, repeated) and of
#     incompressible data (random bytes), plain against zstd.
# Medians of RUNS (default 3), plain and zstd interleaved.
#   scripts/bench-compression.sh [RUNS]
# Everything lives in a directory in /var/tmp, removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
scripts/deps.sh
command -v zstd > /dev/null || apt-get install -y -q zstd > /dev/null
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh compbench

echo "building the corpus..."
CORPUS=$WORK/corpus
mkdir -p "$CORPUS"
cp -a /usr/share/doc "$CORPUS/doc"
cp -a /usr/share/man "$CORPUS/man"
find "$CORPUS" -type l -delete
find "$CORPUS" -name '*.gz' -type f -exec gunzip -fq {} + 2> /dev/null || true
FILES=$(find "$CORPUS" -type f | wc -l)
BYTES=$(du -sb --apparent-size "$CORPUS" | cut -f1)
echo "corpus: $FILES files, $((BYTES / 1048576)) MiB"

# zstd -3 on each file, one by one: bytes, and 4 KiB blocks.
read -r Z_BYTES Z_BLOCKS O_BLOCKS < <(find "$CORPUS" -type f -print0 | python3 -c '
import sys, subprocess, os
paths = sys.stdin.buffer.read().split(b"\0")[:-1]
zb = zk = ok = 0
for p in paths:
    size = os.path.getsize(p)
    ok += (size + 4095) // 4096
    out = subprocess.run(["zstd", "-3", "-q", "-c", p], capture_output=True).stdout
    zb += len(out)
    zk += (len(out) + 4095) // 4096
print(zb, zk, ok)
')
echo "zstd -3, file by file: $((Z_BYTES / 1048576)) MiB in bytes, $((Z_BLOCKS * 4 / 1024)) MiB in 4 KiB blocks (the files: $((O_BLOCKS * 4 / 1024)) MiB in blocks)"

# The big files for the sequential runs.
TEXT=$WORK/text.src
RAND=$WORK/random.src
while [ "$(stat -c %s "$TEXT" 2> /dev/null || echo 0)" -lt 1073741824 ]; do
    find "$CORPUS" -type f -print0 | xargs -0 cat >> "$TEXT"
done
truncate -s 1G "$TEXT"
head -c 1G /dev/urandom > "$RAND"

mkimage() { # kind -> image path
    local img=$WORK/$1.img
    rm -f "$img"
    if [ "$1" = zstd ]; then
        "$BIN/pagelog-mkfs" "$img" --size 6G -q --compress zstd
    else
        "$BIN/pagelog-mkfs" "$img" --size 6G -q
    fi
    echo "$img"
}
mnt() { "$BIN/pagelog-mount" "$1" "$MNT"; }
remount() { umount "$MNT"; drop; mnt "$1"; }

corpus_run() { # kind -> "copy_s read_s du_kib df_kib"
    local img t0 t1 t2 du_k df0 df1
    img=$(mkimage "$1")
    mnt "$img"
    df0=$(df -k --output=used "$MNT" | tail -1)
    t0=$(now)
    cp -a "$CORPUS" "$MNT/c"
    find "$MNT/c" -type f -exec sync {} +
    t1=$(now)
    du_k=$(du -sk "$MNT/c" | cut -f1)
    df1=$(df -k --output=used "$MNT" | tail -1)
    remount "$img"
    t2=$(now)
    tar cf /dev/null -C "$MNT" c
    echo "$(secs "$t0" "$t1") $(secs "$t2" "$(now)") $du_k $((df1 - df0))"
    umount "$MNT"
    rm -f "$img"
}

seq_run() { # kind src -> "write_MiBps read_MiBps"
    local img t0 t1 t2 t3
    img=$(mkimage "$1")
    mnt "$img"
    cat "$2" > /dev/null
    t0=$(now)
    dd if="$2" of="$MNT/big" bs=1M conv=fsync status=none
    t1=$(now)
    remount "$img"
    t2=$(now)
    dd if="$MNT/big" of=/dev/null bs=1M status=none
    t3=$(now)
    awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" \
        'BEGIN {printf "%.0f %.0f\n", 1024 / ((b - a) / 1e9), 1024 / ((d - c) / 1e9)}'
    umount "$MNT"
    rm -f "$img"
}

declare -A R
for i in $(seq "$RUNS"); do
    for kind in plain zstd; do
        R[corpus-$kind]+="$(corpus_run $kind)"$'\n'
        R[text-$kind]+="$(seq_run $kind "$TEXT")"$'\n'
        R[rand-$kind]+="$(seq_run $kind "$RAND")"$'\n'
    done
    echo "run $i of $RUNS done"
done

echo
echo "== the corpus ($FILES files, $((BYTES / 1048576)) MiB; medians of $RUNS) =="
for kind in plain zstd; do
    echo "$kind: copy in $(col corpus-$kind 1) s, read back cold $(col corpus-$kind 2) s, du $(( $(col corpus-$kind 3) / 1024 )) MiB, df grew $(( $(col corpus-$kind 4) / 1024 )) MiB"
done
PLAIN_DU=$(col corpus-plain 3)
ZSTD_DU=$(col corpus-zstd 3)
OURS=$(awk -v p="$PLAIN_DU" -v z="$ZSTD_DU" 'BEGIN {print 1 - z / p}')
THEIRS=$(awk -v o="$O_BLOCKS" -v z="$Z_BLOCKS" 'BEGIN {print 1 - z / o}')
THEIRS_BYTES=$(awk -v o="$BYTES" -v z="$Z_BYTES" 'BEGIN {print 1 - z / o}')
echo "savings: pagelog zstd $(awk -v x="$OURS" 'BEGIN {printf "%.1f", 100 * x}')% of du;" \
    "zstd -3 file by file $(awk -v x="$THEIRS" 'BEGIN {printf "%.1f", 100 * x}')% in 4 KiB blocks" \
    "($(awk -v x="$THEIRS_BYTES" 'BEGIN {printf "%.1f", 100 * x}')% in bytes)"
echo "share of zstd -3's savings: $(ratio "$OURS" "$THEIRS") in blocks, $(ratio "$OURS" "$THEIRS_BYTES") in bytes (target >= 0.80)"
echo "copy-in time, zstd / plain: $(ratio "$(col corpus-plain 1)" "$(col corpus-zstd 1)") of plain's speed;" \
    "cold read: $(ratio "$(col corpus-plain 2)" "$(col corpus-zstd 2)") of plain's speed"
echo
echo "== sequential 1 GiB, MiB/s (medians of $RUNS) =="
for data in text rand; do
    pw=$(col $data-plain 1); pr=$(col $data-plain 2)
    zw=$(col $data-zstd 1); zr=$(col $data-zstd 2)
    echo "$data: plain write $pw read $pr; zstd write $zw read $zr;" \
        "zstd/plain write $(ratio "$zw" "$pw") read $(ratio "$zr" "$pr")"
done
