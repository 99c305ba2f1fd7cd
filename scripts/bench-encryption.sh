#!/usr/bin/env bash
# Sealing (issue 11, encryption), side by side in one run with plain
# pagelog:
#  1. sequential write (1 GiB of random bytes, dd conv=fsync) and cold
#     read (after a remount and dropping the caches), plain against a
#     sealed image (--encrypt) and a sealed, compressed one;
#  2. pagelog-fsck --verify-data of the image holding that GiB, plain
#     against sealed (every data page's tag verified): cold (caches
#     dropped), and warm (run again, the image in the page cache, so that
#     the checker's own cost shows rather than the disk's); the time to
#     unlock (3.) is taken off the sealed checks' times;
#  3. unlocking with the default Argon2id costs: pagelog-info on the
#     sealed image against the plain one (the difference is the key
#     derivation).
# Random bytes, so that compression does not hide the cost of sealing.
# Medians of RUNS (default 3), kinds interleaved.
#   scripts/bench-encryption.sh [RUNS]
# Everything lives in a directory in /var/tmp, removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
scripts/deps.sh
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh sealbench
PASS=$WORK/pass
echo "a passphrase for the benchmark" > "$PASS"
chmod 600 "$PASS"

SRC=$WORK/random.src
head -c 1G /dev/urandom > "$SRC"

# The passphrase options a kind's tools need.
key() { case $1 in plain) ;; *) echo "--passphrase-file $PASS" ;; esac; }

mkimage() { # kind -> image path
    local img=$WORK/$1.img
    rm -f "$img"
    case $1 in
        plain) "$BIN/pagelog-mkfs" "$img" --size 4G -q ;;
        sealed) "$BIN/pagelog-mkfs" "$img" --size 4G -q --encrypt --passphrase-file "$PASS" ;;
        sealed-zstd) "$BIN/pagelog-mkfs" "$img" --size 4G -q --encrypt --passphrase-file "$PASS" --compress zstd ;;
    esac
    echo "$img"
}
mnt() { # kind image
    # shellcheck disable=SC2046
    "$BIN/pagelog-mount" $(key "$1") "$2" "$MNT"
}

run_kind() { # kind -> "write_MiBps read_MiBps cold_verify_s warm_verify_s info_s"
    local img t0 t1 t2 t_read t3 t4 t5 t6
    img=$(mkimage "$1")
    mnt "$1" "$img"
    cat "$SRC" > /dev/null
    t0=$(now)
    dd if="$SRC" of="$MNT/big" bs=1M conv=fsync status=none
    t1=$(now)
    umount "$MNT"
    drop
    mnt "$1" "$img"
    t2=$(now)
    dd if="$MNT/big" of=/dev/null bs=1M status=none
    t_read=$(now)
    umount "$MNT"
    drop
    t3=$(now)
    # shellcheck disable=SC2046
    "$BIN/pagelog-fsck" -q --verify-data $(key "$1") "$img" > /dev/null
    t4=$(now)
    # shellcheck disable=SC2046
    "$BIN/pagelog-fsck" -q --verify-data $(key "$1") "$img" > /dev/null
    t5=$(now)
    # shellcheck disable=SC2046
    "$BIN/pagelog-info" $(key "$1") "$img" > /dev/null
    t6=$(now)
    awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t_read" \
        'BEGIN {printf "%.0f %.0f ", 1024 / ((b - a) / 1e9), 1024 / ((d - c) / 1e9)}'
    echo "$(secs "$t3" "$t4") $(secs "$t4" "$t5") $(secs "$t5" "$t6")"
    rm -f "$img"
}

KINDS="plain sealed sealed-zstd"
declare -A R
for i in $(seq "$RUNS"); do
    for kind in $KINDS; do
        R[$kind]+="$(run_kind $kind)"$'\n'
    done
    echo "run $i of $RUNS done"
done

echo
UNLOCK=$(awk -v a="$(col sealed 5)" -v b="$(col plain 5)" 'BEGIN {printf "%.3f", a - b}')
less() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a - b}'; }
echo "== 1 GiB of random bytes (medians of $RUNS) =="
for kind in $KINDS; do
    echo "$kind: write $(col "$kind" 1) MiB/s, cold read $(col "$kind" 2) MiB/s," \
        "fsck --verify-data cold $(col "$kind" 3) s, warm $(col "$kind" 4) s, pagelog-info $(col "$kind" 5) s"
done
echo "unlocking (Argon2id, default costs): $UNLOCK s (taken off the sealed checks below)"
for kind in sealed sealed-zstd; do
    cold=$(less "$(col "$kind" 3)" "$UNLOCK")
    warm=$(less "$(col "$kind" 4)" "$UNLOCK")
    echo "$kind / plain: write $(ratio "$(col "$kind" 1)" "$(col plain 1)")," \
        "read $(ratio "$(col "$kind" 2)" "$(col plain 2)") (target >= 0.75);" \
        "fsck --verify-data speed cold $(ratio "$(col plain 3)" "$cold"), warm $(ratio "$(col plain 4)" "$warm") (target >= 0.50)"
done
