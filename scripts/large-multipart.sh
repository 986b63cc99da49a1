#!/usr/bin/env bash
# Uploads one large object in multipart parts to a freshly started embedded Cairn with boto3,
# reads it back, and checks it is bit-exact; prints the server's peak memory (VmHWM) before
# and after. Too slow for the test command: run it by hand (docs/multipart.md has a run).
#
#   bash scripts/large-multipart.sh [SIZE_MIB] [PART_MIB] [WORK_DIR]
#
# Defaults: a 5 GiB object (5120 MiB) in 100 MiB parts, working under a temporary directory
# (it needs about 4x the object's size on disk: the file, its 2+2 shards, the copy read back).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/server-endpoint.sh
size_mib=${1:-5120}
part_mib=${2:-100}
work=${3:-$(mktemp -d)}
mkdir -p "$work"
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/debug/cairn"
[ -x "$bin" ] || cargo build --bin cairn
venv="$target_dir/large-multipart-venv"
if ! "$venv/bin/python" -c 'import boto3' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet boto3
fi

server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work/d1" "$work/d2" "$work/d3" "$work/d4" "$work/object" "$work/read-back"
}
trap cleanup EXIT

access=large-mp-access secret=large-mp-secret-0123456789
CAIRN_ACCESS_KEY=$access CAIRN_SECRET_KEY=$secret \
  "$bin" server --address 127.0.0.1:0 "$work/d1" "$work/d2" "$work/d3" "$work/d4" \
  >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
endpoint=$(server_endpoint "$work/server.out" "$server_pid" "$work/server.log") || exit 1
hwm() { sed -n 's/VmHWM:\s*//p' "/proc/$server_pid/status" 2>/dev/null || echo "n/a (no /proc)"; }

echo "== writing a ${size_mib} MiB file of random bytes"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/object"
echo "server peak RSS before: $(hwm)"
ENDPOINT=$endpoint ACCESS=$access SECRET=$secret PART_MIB=$part_mib WORK=$work \
  "$venv/bin/python" - <<'PY'
import os, time, boto3
from boto3.s3.transfer import TransferConfig
s3 = boto3.client("s3", endpoint_url=os.environ["ENDPOINT"],
                  aws_access_key_id=os.environ["ACCESS"],
                  aws_secret_access_key=os.environ["SECRET"], region_name="us-east-1")
mib = 1024 * 1024
part = int(os.environ["PART_MIB"]) * mib
config = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=4)
work = os.environ["WORK"]
s3.create_bucket(Bucket="large")
t = time.monotonic()
s3.upload_file(f"{work}/object", "large", "object", Config=config)
up = time.monotonic() - t
head = s3.head_object(Bucket="large", Key="object")
print(f"uploaded in {up:.1f} s; ETag {head['ETag']}; {head['ContentLength']} bytes")
t = time.monotonic()
s3.download_file("large", "object", f"{work}/read-back", Config=config)
print(f"read back in {time.monotonic() - t:.1f} s")
PY
echo "server peak RSS after: $(hwm)"
if cmp "$work/object" "$work/read-back"; then
  echo "== bit-exact: the object read back equals the file uploaded"
else
  echo "== MISMATCH: the object read back differs" >&2
  exit 1
fi
