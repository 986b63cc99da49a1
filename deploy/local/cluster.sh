#!/usr/bin/env bash
# A local development cluster as plain processes: 3 meta, 4 blob (2 disks each), 2 gateways.
#
#   deploy/local/cluster.sh up     [DIR]   start whatever is not running; init on first start
#   deploy/local/cluster.sh down   [DIR]   stop every process (data is kept)
#   deploy/local/cluster.sh status [DIR]   processes, then `cairn admin status`
#
# DIR (default ./.cluster) keeps each node's data, log and pid file (DIR/<role>-<n>.pid), so a
# second `up` finds everything again. On Linux every node gets its own loopback address
# (127.0.0.11.. meta, 127.0.0.21.. blob, 127.0.0.31.. gateways); elsewhere all listen on
# 127.0.0.1 with distinct ports.
#
# Environment: CAIRN_BIN (default: target/release/cairn, built if missing),
# CAIRN_ACCESS_KEY / CAIRN_SECRET_KEY (default cairnadmin / cairnadmin),
# CAIRN_CLUSTER_PORT (first port, default 17000).
set -euo pipefail

cmd=${1:-}
dir=${2:-./.cluster}
root=$(cd "$(dirname "$0")/../.." && pwd)
port=${CAIRN_CLUSTER_PORT:-17000}
export CAIRN_ACCESS_KEY=${CAIRN_ACCESS_KEY:-cairnadmin}
export CAIRN_SECRET_KEY=${CAIRN_SECRET_KEY:-cairnadmin}

META_NODES=3
BLOB_NODES=4
GATEWAYS=2

# host ROLE_BASE N: the address of node N of a role.
host() {
    if [ "$(uname -s)" = Linux ]; then echo "127.0.0.$(($1 + $2))"; else echo 127.0.0.1; fi
}
meta_addr() { echo "$(host 10 "$1"):$((port + $1))"; }
blob_addr() { echo "$(host 20 "$1"):$((port + 100 + $1))"; }
gateway_addr() { echo "$(host 30 "$1"):$((port + 200 + $1))"; }

meta_endpoints() {
    local list="" n
    for n in $(seq 1 $META_NODES); do list="$list${list:+,}http://$(meta_addr "$n")"; done
    echo "$list"
}

cairn_bin() {
    if [ -n "${CAIRN_BIN:-}" ]; then echo "$CAIRN_BIN"; return; fi
    local bin="$root/target/release/cairn"
    if [ ! -x "$bin" ]; then
        echo "building $bin ..." >&2
        (cd "$root" && cargo build --release --bin cairn >&2)
    fi
    echo "$bin"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# start NAME ARGS...: runs `cairn ARGS...` unless DIR/NAME.pid names a live process.
start() {
    local name=$1; shift
    local pidfile="$dir/$name.pid"
    if alive "$pidfile"; then return; fi
    nohup "$CAIRN" "$@" >>"$dir/$name.log" 2>&1 &
    echo $! >"$pidfile"
}

# wait_for_line NAME TEXT: waits until DIR/NAME.log has a line containing TEXT.
wait_for_line() {
    local i
    for i in $(seq 1 300); do
        if grep -q "$2" "$dir/$1.log" 2>/dev/null; then return 0; fi
        if ! alive "$dir/$1.pid"; then
            echo "$1 exited; see $dir/$1.log" >&2; tail -20 "$dir/$1.log" >&2; return 1
        fi
        sleep 0.2
    done
    echo "$1 did not start; see $dir/$1.log" >&2
    return 1
}

up() {
    mkdir -p "$dir"
    CAIRN=$(cairn_bin)
    local n
    for n in $(seq 1 $META_NODES); do
        start "meta-$n" meta --listen "$(meta_addr "$n")" --dir "$dir/meta-$n/data"
    done
    for n in $(seq 1 $META_NODES); do wait_for_line "meta-$n" "META "; done
    if [ ! -f "$dir/initialized" ]; then
        # Initialize happens once; if it already did (the marker was lost), status says so.
        "$CAIRN" admin --meta "$(meta_endpoints)" init >&2 ||
            "$CAIRN" admin --meta "$(meta_endpoints)" status >/dev/null
        touch "$dir/initialized"
    fi
    for n in $(seq 1 $BLOB_NODES); do
        start "blob-$n" blob --listen "$(blob_addr "$n")" --meta "$(meta_endpoints)" \
            "$dir/blob-$n/disk1" "$dir/blob-$n/disk2"
    done
    for n in $(seq 1 $GATEWAYS); do
        start "gateway-$n" gateway --address "$(gateway_addr "$n")" --meta "$(meta_endpoints)"
    done
    for n in $(seq 1 $BLOB_NODES); do wait_for_line "blob-$n" "BLOB "; done
    for n in $(seq 1 $GATEWAYS); do wait_for_line "gateway-$n" "S3 "; done
    for n in $(seq 1 $GATEWAYS); do echo "S3 http://$(gateway_addr "$n")"; done
    for n in $(seq 1 $META_NODES); do echo "META $(meta_addr "$n")"; done
    echo "credentials: $CAIRN_ACCESS_KEY / (CAIRN_SECRET_KEY)" >&2
}

down() {
    local pidfile pids=()
    for pidfile in "$dir"/*.pid; do
        [ -f "$pidfile" ] || continue
        if alive "$pidfile"; then
            kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
            pids+=("$(cat "$pidfile")")
        fi
    done
    local pid i
    for pid in "${pids[@]+"${pids[@]}"}"; do
        for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -f "$dir"/*.pid
    echo "stopped; data kept in $dir" >&2
}

status() {
    local pidfile
    for pidfile in "$dir"/*.pid; do
        [ -f "$pidfile" ] || continue
        if alive "$pidfile"; then echo "$(basename "$pidfile" .pid) running (pid $(cat "$pidfile"))"
        else echo "$(basename "$pidfile" .pid) stopped"; fi
    done
    "$(cairn_bin)" admin --meta "$(meta_endpoints)" status
}

case "$cmd" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status [DIR]" >&2; exit 2 ;;
esac
