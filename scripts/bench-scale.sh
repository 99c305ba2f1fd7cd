#!/usr/bin/env bash
# Memory at scale (issue 13, item 5): N empty files (default 1,000,000) in
# 100 directories are created through a mount, the mount is remounted with
# caches dropped, every file is stat-ed cold (so the daemon reads every
# inode once) and a directory listing of the whole tree is taken; the
# daemon's peak resident memory (VmHWM) is printed after the create and
# after the cold walk, then `pagelog-fsck -n` (the full check) and
# `pagelog-fsck --fast` run under /usr/bin/time with their peak memory.
# Extra arguments go to pagelog-mount (for example `-o cache=64M`).
#
#   scripts/bench-scale.sh [FILES] [pagelog-mount arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
shift || true
[ -x /usr/bin/time ] || apt-get install -y -q time
. scripts/bench-lib.sh scale
MB=$WORK/metabench
gcc -O2 -Wall -o "$MB" ../shared/bench/metabench.c
DIRS=100
PER=$((N / DIRS))

daemon_pid() { pgrep -f "[p]agelog-mount.* $WORK/s.img" | head -1; }
hwm_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$(daemon_pid)/status"; }
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$(daemon_pid)/status"; }

"$BIN/pagelog-mkfs" "$WORK/s.img" --size 8G -q
"$BIN/pagelog-mount" "$@" "$WORK/s.img" "$MNT"
t0=$(now)
for d in $(seq 1 $DIRS); do
    mkdir "$MNT/d$d"
    "$MB" "$MNT/d$d" "$PER" create > /dev/null
done
sync -f "$MNT"
t1=$(now)
echo "create $N files: $(secs "$t0" "$t1") s, daemon peak $(hwm_mib) MiB, resident $(rss_mib) MiB"
pagelog_umount "$WORK/s.img" "$MNT"

drop
"$BIN/pagelog-mount" "$@" "$WORK/s.img" "$MNT"
t0=$(now)
for d in $(seq 1 $DIRS); do
    "$MB" "$MNT/d$d" "$PER" stat > /dev/null
done
find "$MNT" -type f | wc -l > "$WORK/count"
t1=$(now)
echo "cold stat + find of $(cat "$WORK/count") files: $(secs "$t0" "$t1") s, daemon peak $(hwm_mib) MiB, resident $(rss_mib) MiB"
pagelog_umount "$WORK/s.img" "$MNT"

for mode in -n --fast; do
    drop
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$BIN/pagelog-fsck" "$mode" "$WORK/s.img" > /dev/null
    read -r secs kib < "$WORK/time"
    echo "pagelog-fsck $mode: $secs s, peak $((kib / 1024)) MiB"
done
