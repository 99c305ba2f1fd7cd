#!/usr/bin/env bash
# Installs what building and testing pagelog needs on a Debian machine, if
# missing: FUSE 3, gcc, help2man and binutils (man pages and stripping for
# scripts/install.sh), the ACL and xattr tools, e2fsprogs (for the "other
# filesystem" tests), util-linux (setpriv), man-db and bash-completion (the
# install script's test); fio, bindfs, postmark and python3 for benchmarks.
#   scripts/deps.sh            for building and testing
#   scripts/deps.sh --install  only what scripts/install.sh needs
#   scripts/deps.sh --bench    also the benchmarks' tools
set -euo pipefail
mode=${1:-}
need=()
command -v fusermount3 >/dev/null || need+=(fuse3)
command -v gcc >/dev/null || need+=(gcc)
command -v help2man >/dev/null || need+=(help2man)
command -v strip >/dev/null || need+=(binutils)
if [ "$mode" != "--install" ]; then
    command -v getfacl >/dev/null || need+=(acl)
    command -v getfattr >/dev/null || need+=(attr)
    command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
    command -v setpriv >/dev/null || need+=(util-linux)
    command -v losetup >/dev/null || need+=(mount)
    command -v man >/dev/null || need+=(man-db)
    [ -f /usr/share/bash-completion/bash_completion ] || need+=(bash-completion)
fi
if [ "$mode" = "--bench" ]; then
    command -v fio >/dev/null || need+=(fio)
    command -v bindfs >/dev/null || need+=(bindfs)
    command -v postmark >/dev/null || need+=(postmark)
    command -v python3 >/dev/null || need+=(python3)
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "need root to install packages (or install them yourself: ${need[*]})" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
    echo "cargo is missing: install Rust 1.89 or newer (https://rustup.rs), then run this again" >&2
    exit 1
fi
if [ "$mode" != "--install" ]; then
    for tool in fmt clippy; do
        if ! cargo "$tool" --version >/dev/null 2>&1; then
            echo "cargo $tool is missing: rustup component add $( [ $tool = fmt ] && echo rustfmt || echo clippy )" >&2
            exit 1
        fi
    done
fi
[ "$mode" = "--install" ] && exit 0
if [ ! -e /dev/fuse ]; then
    modprobe fuse 2>/dev/null || true
fi
[ -e /dev/fuse ] || { echo "/dev/fuse is missing: FUSE is not available on this machine" >&2; exit 1; }
