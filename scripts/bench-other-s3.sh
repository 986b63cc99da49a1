#!/usr/bin/env bash
# `cairn bench` against an S3 server that is not Cairn: moto's server (an S3 implementation
# in Python, newest from PyPI, in a venv under target/, rebuilt if missing), on 127.0.0.1.
# Every workload runs for two seconds and must finish with operations done and no error, so
# the tool's requests (SigV4, path-style, multipart, listing pages, batch deletes) are ones
# another implementation accepts, not only Cairn.
#
#   bash scripts/bench-other-s3.sh [CAIRN_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
venv="$target_dir/moto-venv"
if [ ! -x "$venv/bin/moto_server" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet "moto[server]"
fi
bin=${1:-$target_dir/debug/cairn}
[ -x "$bin" ] || cargo build --bin cairn

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
cleanup() {
  kill "$moto_pid" 2>/dev/null && wait "$moto_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
endpoint="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('$endpoint/moto-api/')" 2>/dev/null && break
  kill -0 "$moto_pid" 2>/dev/null || { cat "$work/moto.log"; echo "moto died" >&2; exit 1; }
  sleep 0.2
done

failed=0
run() {
  local name=$1
  shift
  if ! "$bin" bench --endpoint "$endpoint" --access-key moto --secret-key moto-secret \
      --concurrency 4 --duration 2s --json --quiet "$@" >"$work/$name.json" 2>"$work/$name.err"; then
    echo "bench $name against moto: exit status $?" >&2
    cat "$work/$name.err" >&2
    failed=1
    return
  fi
  if ! python3 - "$work/$name.json" "$name" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
name = sys.argv[2]
ops = {op: (o["ops"], o["errors"]) for op, o in report["operations"].items()}
ok = report["errors"] == 0 and report["ops"] > 0 and all(n > 0 for n, _ in ops.values())
print(f"bench {name} against moto: {report['ops']} ops, {report['errors']} errors, {ops}")
sys.exit(0 if ok else 1)
PY
  then
    failed=1
  fi
}
run put --workload put --size 4KiB
run get --workload get --size 4KiB --objects 20
run mixed --workload mixed --size 4KiB --objects 20
run list --workload list --size 0 --objects 50 --page-size 10
run delete --workload delete --size 1KiB --objects 20
run multipart --workload multipart --size 11MiB
[ "$failed" -eq 0 ] && echo "bench against another S3 server: ok"
exit "$failed"
