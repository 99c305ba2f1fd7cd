#!/usr/bin/env bash
# A three-node Garage cluster on loopback (replication factor 3), for the
# S3 segment store's tests and benchmarks, and for trying it out.
#
#   scripts/garage.sh build               builds Garage once (cargo install, from the
#                                         package registry) into $GARAGE_CACHE
#   scripts/garage.sh start DIR           starts nodes 1-3 with their state under DIR,
#                                         makes buckets "pagelog" and "pagelog-copy" and a key, and writes
#                                         DIR/store.toml (endpoints and the key)
#   scripts/garage.sh stop-node DIR N     stops node N (SIGTERM), start-node DIR N again
#   scripts/garage.sh wait DIR            waits until every node serves the bucket (after
#                                         a restart, a node takes a moment to rejoin)
#   scripts/garage.sh stop DIR            stops every node
#
# Node N serves S3 on 127.0.0.1:39N0 and RPC on 127.0.0.1:39N1.
set -euo pipefail
GARAGE_VERSION=2.5.0
GARAGE_CACHE=${GARAGE_CACHE:-/var/cache/pagelog-test/garage-$GARAGE_VERSION}
GARAGE=$GARAGE_CACHE/bin/garage

build() {
    [ -x "$GARAGE" ] && return 0
    echo "building Garage $GARAGE_VERSION into $GARAGE_CACHE (once; about 8 minutes on two cores)" >&2
    mkdir -p "$GARAGE_CACHE"
    nice cargo install garage --version "$GARAGE_VERSION" --locked --quiet \
        --root "$GARAGE_CACHE" --target-dir "$GARAGE_CACHE/target"
    rm -rf "$GARAGE_CACHE/target"
}

# Once the cluster is made, every node knows where the others are when it
# starts again (even when all of them stopped).
peers() { # DIR
    [ -f "$1/peers" ] || return 0
    echo "bootstrap_peers = [$(sed 's/.*/"&"/' "$1/peers" | paste -sd,)]"
}

config() { # DIR N
    local dir=$1 n=$2
    cat <<EOF
metadata_dir = "$dir/n$n/meta"
data_dir = "$dir/n$n/data"
db_engine = "lmdb"
metadata_fsync = true
data_fsync = true
replication_factor = 3
rpc_bind_addr = "127.0.0.1:39${n}1"
rpc_public_addr = "127.0.0.1:39${n}1"
rpc_secret = "$(cat "$dir/rpc_secret")"
$(peers "$dir")

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:39${n}0"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:39${n}3"
EOF
}

g() { # DIR N ARGS...
    local dir=$1 n=$2
    shift 2
    "$GARAGE" -c "$dir/n$n.toml" "$@"
}

start_node() { # DIR N
    local dir=$1 n=$2
    mkdir -p "$dir/n$n"
    config "$dir" "$n" >"$dir/n$n.toml"
    RUST_LOG=${GARAGE_LOG:-warn} setsid "$GARAGE" -c "$dir/n$n.toml" server \
        >>"$dir/n$n.log" 2>&1 </dev/null &
    local pid=$!
    echo $pid >"$dir/n$n.pid"
    # Up when its RPC answers, and it is this process that answers (not
    # another cluster's node on the same port).
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        g "$dir" "$n" node id -q >/dev/null 2>&1 && kill -0 "$pid" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "garage node $n did not start (is another cluster running on ports 39${n}0-39${n}3?):" >&2
    tail -5 "$dir/n$n.log" >&2
    return 1
}

stop_node() { # DIR N
    local pidf=$1/n$2.pid
    [ -f "$pidf" ] || return 0
    local pid
    pid=$(cat "$pidf")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidf"
}

wait_healthy() { # DIR
    local dir=$1
    for n in 1 2 3; do
        for _ in $(seq 150); do
            g "$dir" "$n" bucket info pagelog >/dev/null 2>&1 && continue 2
            sleep 0.2
        done
        echo "garage node $n does not serve the bucket: see $dir/n$n.log" >&2
        return 1
    done
}

start() { # DIR
    local dir=$1
    build
    mkdir -p "$dir"
    [ -f "$dir/rpc_secret" ] || od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dir/rpc_secret"
    local fresh=0
    [ -d "$dir/n1/meta" ] || fresh=1
    for n in 1 2 3; do start_node "$dir" "$n"; done
    [ "$fresh" = 1 ] || return 0
    for n in 2 3; do g "$dir" 1 node connect "$(g "$dir" "$n" node id -q)" >/dev/null; done
    for n in 1 2 3; do g "$dir" "$n" node id -q; done >"$dir/peers"
    for n in 1 2 3; do
        local id
        id=$(g "$dir" "$n" node id -q | cut -d@ -f1)
        g "$dir" 1 layout assign -z "dc$n" -c 1G "$id" >/dev/null
    done
    g "$dir" 1 layout apply --version 1 >/dev/null
    # The layout reaches every node, then the bucket and key.
    for _ in $(seq 100); do
        g "$dir" 1 bucket create pagelog >/dev/null 2>&1 && break
        sleep 0.2
    done
    local key
    key=$(g "$dir" 1 key create pagelog-test)
    local id secret
    id=$(echo "$key" | sed -n 's/^Key ID: *//p' | tr -d ' ')
    secret=$(echo "$key" | sed -n 's/^Secret key: *//p' | tr -d ' ')
    g "$dir" 1 bucket allow --read --write --owner pagelog --key pagelog-test >/dev/null
    # A second bucket, for snapshots sent away (pagelog-snapshot send).
    g "$dir" 1 bucket create pagelog-copy >/dev/null
    g "$dir" 1 bucket allow --read --write --owner pagelog-copy --key pagelog-test >/dev/null
    umask 077
    cat >"$dir/store.toml" <<EOF
endpoint = "http://127.0.0.1:3910"
fallback_endpoints = ["http://127.0.0.1:3920", "http://127.0.0.1:3930"]
region = "garage"
access_key_id = "$id"
secret_access_key = "$secret"
EOF
}

cmd=${1:-}
case "$cmd" in
build) build ;;
start) start "$2" ;;
start-node) start_node "$2" "$3" ;;
stop-node) stop_node "$2" "$3" ;;
wait) wait_healthy "$2" ;;
stop) for n in 1 2 3; do stop_node "$2" "$n"; done ;;
*)
    sed -n '2,13p' "$0" >&2
    exit 2
    ;;
esac
