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
# Results by target, one line a run (see `rounds`).
declare -A R
# Runs `run TARGET` (the script's) RUNS times for each target of $TARGETS,
# every other round in reverse order (so that no target always goes
# first on a warmer or colder machine), keeping each line in R[TARGET].
rounds() { # RUNS
    local i t list line
    for i in $(seq "$1"); do
        list=$TARGETS
        if [ $((i % 2)) -eq 0 ]; then list=$(echo "$TARGETS" | tr ' ' '\n' | tac | tr '\n' ' '); fi
        for t in $list; do
            line=$(run "$t")
            echo "  $t: $line"
            R[$t]+="$line"$'\n'
        done
        echo "run $i of $1 done"
    done
}
# Column C of the results kept in R[KEY] (one line a run), their median.
col() { printf '%s' "${R[$1]}" | awk -v c="$2" 'NF {print $c}' | median; }
# Unmounts a pagelog mount and waits until its daemon has exited (and so
# let go of the image).
pagelog_umount() { # image mountpoint
    umount "$2"
    while pgrep -f "[p]agelog-mount.* $1" > /dev/null; do sleep 0.1; done
}
# A fresh target on the disk under $WORK, its directory printed:
# `pagelog` (a preallocated 4 GiB image, as fio lays out its files on the
# anchors, mounted with the remaining arguments as pagelog-mount options),
# `bindfs` (a FUSE passthrough with big writes over a directory) or `ext4`
# (the kernel's ext4 on a 4 GiB loop image).
target_up() { # kind [pagelog-mount arguments...]
    local kind=$1
    shift
    case $kind in
    pagelog)
        "$BIN/pagelog-mkfs" "$WORK/p.img" --size 4G -q --preallocate
        "$BIN/pagelog-mount" "$@" "$WORK/p.img" "$MNT"
        echo "$MNT" ;;
    bindfs)
        mkdir -p "$WORK/back" "$WORK/bind"
        bindfs -o big_writes "$WORK/back" "$WORK/bind"
        echo "$WORK/bind" ;;
    ext4)
        truncate -s 4G "$WORK/e.img"
        mkfs.ext4 -q -F "$WORK/e.img"
        mkdir -p "$WORK/ext4"
        mount -o loop "$WORK/e.img" "$WORK/ext4"
        echo "$WORK/ext4" ;;
    esac
}

# Takes a target of `target_up` down (a pagelog image is checked first).
target_down() { # kind
    case $1 in
    pagelog) pagelog_umount "$WORK/p.img" "$MNT"; "$BIN/pagelog-fsck" -n "$WORK/p.img" > /dev/null; rm -f "$WORK/p.img" ;;
    bindfs) fusermount3 -u "$WORK/bind"; rm -rf "$WORK/back" ;;
    ext4) umount "$WORK/ext4"; rm -f "$WORK/e.img" ;;
    esac
}
