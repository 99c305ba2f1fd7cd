#!/usr/bin/env bash
# Installs pagelog: a release build of every pagelog-* program, stripped,
# the mkfs.pagelog, fsck.pagelog and mount.pagelog links that mkfs(8),
# fsck(8), mount(8) and /etc/fstab use, man pages made from each program's
# --help (help2man), and bash and zsh completions that read --help. With
# --uninstall, removes exactly what the install put there.
#
#   scripts/install.sh [--prefix DIR] [--helper-dir DIR] [--destdir DIR]
#   scripts/install.sh --uninstall [--prefix DIR] [--destdir DIR]
#
#   --prefix DIR      where everything but the links goes (default /usr/local):
#                       DIR/sbin/pagelog-*                  the programs
#                       DIR/share/man/man8/                 their man pages
#                       DIR/share/bash-completion/completions/, DIR/share/zsh/site-functions/
#                       DIR/share/pagelog/installed         the list --uninstall reads
#   --helper-dir DIR  where the mkfs.pagelog, fsck.pagelog and mount.pagelog
#                     links go (default /sbin: mount(8) looks for mount.TYPE in
#                     /sbin, /sbin/fs.d and /sbin/fs only)
#   --destdir DIR     a staging root put in front of every path (DESTDIR=DIR in
#                     the environment does the same): for a package or a test
#
# The programs are those the release build of the workspace produces,
# except the test package's tools (pagelog-stress, pagelog-hotcold and
# friends stay in target/release). Needs cargo, help2man and strip:
# scripts/deps.sh --install installs what is missing, and this script runs
# it first.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
    echo "install.sh: $*" >&2
    exit 1
}

prefix=/usr/local
helper_dir=/sbin
destdir=${DESTDIR:-}
action=install
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --helper-dir) helper_dir=${2:?--helper-dir needs a directory}; shift 2 ;;
        --helper-dir=*) helper_dir=${1#*=}; shift ;;
        --destdir) destdir=${2:?--destdir needs a directory}; shift 2 ;;
        --destdir=*) destdir=${1#*=}; shift ;;
        --uninstall) action=uninstall; shift ;;
        -h | --help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (see scripts/install.sh --help)" ;;
    esac
done
for dir in "$prefix" "$helper_dir"; do
    case $dir in
        /*) ;;
        *) die "'$dir' is not an absolute path" ;;
    esac
done
if [ -n "$destdir" ]; then
    if [ "$action" = install ]; then mkdir -p "$destdir"; fi
    [ -d "$destdir" ] || die "no directory $destdir"
    destdir=$(cd "$destdir" && pwd)
fi
prefix=${prefix%/}
helper_dir=${helper_dir%/}
manifest=$prefix/share/pagelog/installed

# What this install put in place, one "f PATH" (file or link) or "d PATH"
# (a directory it created) a line, PATH without the staging root.
entries=()
note() { entries+=("$1 $2"); }
save_manifest() {
    if [ ${#entries[@]} -gt 0 ] && [ -d "$destdir${manifest%/*}" ]; then
        printf '%s\n' "${entries[@]}" >"$destdir$manifest"
    fi
}

# mkdir -p that notes each directory it creates.
make_dir() {
    local dir=$1 missing=()
    while [ ! -d "$destdir$dir" ]; do
        missing=("$dir" "${missing[@]}")
        dir=$(dirname "$dir")
    done
    for dir in "${missing[@]}"; do
        mkdir "$destdir$dir"
        note d "$dir"
    done
}

uninstall() {
    local list=$destdir$manifest kind path lines=()
    [ -f "$list" ] || die "nothing to uninstall: $list does not exist"
    mapfile -t lines <"$list"
    for line in "${lines[@]}"; do
        kind=${line%% *} path=${line#* }
        if [ "$kind" = f ]; then rm -f "$destdir$path"; fi
    done
    rm -f "$list"
    # Directories last, deepest first, and only if nothing else is in them.
    for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
        kind=${lines[i]%% *} path=${lines[i]#* }
        if [ "$kind" = d ]; then rmdir "$destdir$path" 2>/dev/null || true; fi
    done
    echo "removed what $manifest listed"
}

# The pagelog-* programs of a release build, one path a line.
build() {
    cargo build --release --workspace --exclude pagelog-tests --bins \
        --message-format=json-render-diagnostics |
        grep -o '"executable":"[^"]*"' |
        sed 's/^"executable":"//; s/"$//' |
        grep '/pagelog-[^/]*$'
}

# mkfs.pagelog for pagelog-mkfs, and so on: the names mkfs(8), fsck(8) and
# mount(8) look for.
helper_name() {
    case $1 in
        pagelog-mkfs | pagelog-fsck | pagelog-mount) echo "${1#pagelog-}.pagelog" ;;
    esac
}

install_program() {
    local exe=$1 name=${1##*/} sbin=$prefix/sbin
    install -s -m 755 "$exe" "$destdir$sbin/$name"
    note f "$sbin/$name"
    local link
    link=$(helper_name "$name")
    if [ -n "$link" ]; then
        ln -sfr "$destdir$sbin/$name" "$destdir$helper_dir/$link"
        note f "$helper_dir/$link"
    fi
}

# The man page, from --help and --version; NAME's line is --help's first.
install_man_page() {
    local name=$1 dir=$prefix/share/man/man8 help desc link
    help=$("$destdir$prefix/sbin/$name" --help)
    desc=${help%%$'\n'*}
    desc=${desc%.}
    help2man --no-info --section=8 --name="${desc,}" \
        --output="$destdir$dir/$name.8" "$destdir$prefix/sbin/$name"
    note f "$dir/$name.8"
    link=$(helper_name "$name")
    if [ -n "$link" ]; then
        ln -sf "$name.8" "$destdir$dir/$link.8"
        note f "$dir/$link.8"
    fi
}

# Completions that read the options from --help when asked: bash's
# _longopt (from bash-completion) and zsh's _gnu_generic.
install_completions() {
    local name=$1 link names bash_dir=$prefix/share/bash-completion/completions
    local zsh_dir=$prefix/share/zsh/site-functions
    link=$(helper_name "$name")
    names="$name${link:+ $link}"
    printf '# %s: options from its --help (made by pagelog'\''s scripts/install.sh)\ncomplete -F _longopt %s\n' \
        "$name" "$names" >"$destdir$bash_dir/$name"
    note f "$bash_dir/$name"
    if [ -n "$link" ]; then
        # bash-completion loads the file named after the command typed.
        ln -sf "$name" "$destdir$bash_dir/$link"
        note f "$bash_dir/$link"
    fi
    printf '#compdef %s\n# %s: options from its --help (made by pagelog'\''s scripts/install.sh)\n_gnu_generic "$@"\n' \
        "$names" "$name" >"$destdir$zsh_dir/_$name"
    note f "$zsh_dir/_$name"
}

if [ "$action" = uninstall ]; then
    uninstall
    exit 0
fi

scripts/deps.sh --install
echo "building (release)..."
built=$(build) || die "the release build failed, or made no pagelog-* program"
mapfile -t programs <<<"$built"
if [ -f "$destdir$manifest" ]; then
    echo "replacing the earlier install"
    uninstall >/dev/null
fi
trap save_manifest EXIT
make_dir "${manifest%/*}"
for dir in "$prefix/sbin" "$helper_dir" "$prefix/share/man/man8" \
    "$prefix/share/bash-completion/completions" "$prefix/share/zsh/site-functions"; do
    make_dir "$dir"
done
for exe in "${programs[@]}"; do
    install_program "$exe"
done
for exe in "${programs[@]}"; do
    install_man_page "${exe##*/}"
    install_completions "${exe##*/}"
done
names=$(printf '%s ' "${programs[@]##*/}")
echo "installed in $destdir$prefix/sbin: $names"
echo "links mkfs.pagelog, fsck.pagelog, mount.pagelog in $destdir$helper_dir;" \
    "man pages in $destdir$prefix/share/man/man8; completions for bash and zsh"
echo "uninstall with: scripts/install.sh --uninstall${destdir:+ --destdir $destdir}$([ "$prefix" = /usr/local ] || echo " --prefix $prefix")"
