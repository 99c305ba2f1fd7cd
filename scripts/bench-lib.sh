# What the benchmarks share; sourced, not run. Builds the release
# binaries, makes a work directory in /var/tmp named after NAME with a
# mount point $MNT, removed on exit (every mount point in it unmounted
# first), and defines the helpers.
#   . scripts/bench-lib.sh NAME
cargo build --release --workspace --exclude pagelog-tests --bins
BIN=$PWD/target/release
WORK=$(mktemp -d "/var/tmp/pagelog-$1.XXXXXX")
MNT=$WORK/mnt
cleanup() {
    for m in "$WORK"/*/; do
        if mountpoint -q "$m"; then umount "$m"; fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$MNT"
now() { date +%s%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b - a) / 1e9}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
# Column C of the results kept in R[KEY] (one line a run), their median.
col() { printf '%s' "${R[$1]}" | awk -v c="$2" 'NF {print $c}' | median; }
# Unmounts a pagelog mount and waits until its daemon has exited (and so
# let go of the image).
pagelog_umount() { # image mountpoint
    umount "$2"
    while pgrep -f "[p]agelog-mount.* $1" > /dev/null; do sleep 0.1; done
}
