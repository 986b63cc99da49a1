#!/usr/bin/env bash
# Server CPU per GiB moved: a fresh embedded Cairn over four data directories (2+2), one
# `cairn bench` workload against it, and the server's user and system CPU time (from
# /proc/PID/stat, so Linux only) over a window in the middle of the run, divided by the bytes
# the bench moved in that window. On a shared machine this moves far less from run to run
# than throughput does, so it shows what a change to the data path saves.
#
#   bash scripts/cpu-per-gib.sh CAIRN_BINARY [cairn bench arguments...]
#   e.g. bash scripts/cpu-per-gib.sh target/debug/cairn --workload put --size 64MiB --concurrency 4
#
# Environment: DATA (parent of the data directories, default a temporary directory), WARMUP
# and WINDOW (seconds, default 10 and 10; the bench runs WARMUP + WINDOW + 5 seconds).
set -euo pipefail
source "$(dirname "$0")/lib/server-endpoint.sh"
BIN=$1
shift
DATA=${DATA:-$(mktemp -d)}
WARMUP=${WARMUP:-10}
WINDOW=${WINDOW:-10}
export CAIRN_ACCESS_KEY=bench-access CAIRN_SECRET_KEY=bench-secret-key
mkdir -p "$DATA"
rm -rf "$DATA"/d1 "$DATA"/d2 "$DATA"/d3 "$DATA"/d4
"$BIN" server "$DATA"/d1 "$DATA"/d2 "$DATA"/d3 "$DATA"/d4 --address 127.0.0.1:0 \
    > "$DATA/server.out" 2> "$DATA/server.log" &
SERVER_PID=$!
cleanup() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$DATA"/d1 "$DATA"/d2 "$DATA"/d3 "$DATA"/d4
}
trap cleanup EXIT
ENDPOINT=$(server_endpoint "$DATA/server.out" "$SERVER_PID" "$DATA/server.log") || exit 1

"$BIN" bench --endpoint "$ENDPOINT" --json --quiet "$@" \
    --duration "$((WARMUP + WINDOW + 5))s" > "$DATA/result.json" &
BENCH_PID=$!
# Fields 14 and 15 of /proc/PID/stat: user and system time, in clock ticks.
cpu_ticks() { awk '{print $14, $15}' "/proc/$SERVER_PID/stat"; }
sleep "$WARMUP"
read -r user0 sys0 < <(cpu_ticks)
sleep "$WINDOW"
read -r user1 sys1 < <(cpu_ticks)
wait "$BENCH_PID" || [ $? -eq 3 ]
python3 - "$DATA/result.json" "$user0" "$sys0" "$user1" "$sys1" "$WINDOW" "$(getconf CLK_TCK)" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
user0, sys0, user1, sys1, window, tck = map(float, sys.argv[2:])
gib = report["mib_per_s"] * window / 1024
user, system = (user1 - user0) / tck, (sys1 - sys0) / tck
print(f"{report['workload']} {report['size']} x{report['concurrency']}: "
      f"{report['mib_per_s']:.0f} MiB/s, errors {report['errors']}; server CPU per GiB: "
      f"user {user / gib:.3f} s, system {system / gib:.3f} s "
      f"({(user + system) / window:.2f} cores)")
PY
