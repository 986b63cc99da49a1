#!/usr/bin/env bash
# The `cairn bench` runs behind docs/performance.md: an embedded Cairn over four data
# directories (2+2 erasure coding) measured with `--baseline` beside each workload.
#
#   bash scripts/bench.sh [CAIRN_BINARY] [OUT_DIR]
#
# Environment: DUR (per run, default 20s), LIST_KEYS (default 100000), DATA (parent of the
# data directories, default a temporary directory), ONLY (names of the runs to make, e.g.
# "put-64MiB get-64MiB"; default all). The server inherits the environment, so
# CAIRN_BLOB_IN_PROCESS=0 measures the embedded gateway over the loopback socket. Results: one
# JSON report per run in OUT_DIR (default bench-results/), the server's peak RSS in
# OUT_DIR/rss.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/server-endpoint.sh
BIN=${1:-target/release/cairn}
OUT=${2:-bench-results}
DUR=${DUR:-20s}
LIST_KEYS=${LIST_KEYS:-100000}
DATA=${DATA:-$(mktemp -d)}
mkdir -p "$OUT" "$DATA"
export CAIRN_ACCESS_KEY=bench-access CAIRN_SECRET_KEY=bench-secret-key

SERVER_PID=
start_server() {
    rm -rf "$DATA"/d1 "$DATA"/d2 "$DATA"/d3 "$DATA"/d4
    "$BIN" server "$DATA"/d1 "$DATA"/d2 "$DATA"/d3 "$DATA"/d4 --address 127.0.0.1:0 \
        > "$DATA/server.out" 2> "$DATA/server.log" &
    SERVER_PID=$!
    ENDPOINT=$(server_endpoint "$DATA/server.out" "$SERVER_PID" "$DATA/server.log") || exit 1
}
stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}
trap stop_server EXIT

run() {
    local name=$1
    shift
    if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then
        return 0
    fi
    echo "== $name: cairn bench $*" >&2
    # Exit status 3 (some requests failed) still leaves a report to look at.
    "$BIN" bench --endpoint "$ENDPOINT" --json --quiet "$@" > "$OUT/$name.json" || [ $? -eq 3 ]
}

start_server
run baseline --baseline --dir "$DATA"
run put-64MiB --workload put --size 64MiB --concurrency 4 --duration "$DUR" --baseline --dir "$DATA"
run get-64MiB --workload get --size 64MiB --concurrency 4 --duration "$DUR" --objects 16 --baseline --dir "$DATA"
run put-4KiB --workload put --size 4KiB --concurrency 64 --duration "$DUR" --baseline --dir "$DATA"
run get-4KiB --workload get --size 4KiB --concurrency 64 --duration "$DUR" --objects 1000 --baseline --dir "$DATA"
# One walk at a time through LIST_KEYS keys, 1000 a page; kept, as deleting them one by one
# would take as long as writing them (the data directories are removed instead).
run list --workload list --size 0 --objects "$LIST_KEYS" --prefill-concurrency 64 \
    --page-size 1000 --concurrency 1 --duration "$DUR" --keep
stop_server

# Peak memory of the server under 64 concurrent 64 MiB PUTs, on a fresh server.
if [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" put-64MiB-x64 "* ]]; then
    start_server
    run put-64MiB-x64 --workload put --size 64MiB --concurrency 64 --ops 128
    grep VmHWM "/proc/$SERVER_PID/status" | tee "$OUT/rss.txt"
    stop_server
fi
rm -rf "$DATA"/d1 "$DATA"/d2 "$DATA"/d3 "$DATA"/d4
echo "reports in $OUT/" >&2
