#!/usr/bin/env bash
# Runs the S3 clients users have against a freshly started embedded server, with default
# settings: boto3, the aws CLI and s3cmd (newest from PyPI, in a venv under target/, rebuilt
# if missing) and rclone (Debian's package, installed by scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/server-endpoint.sh
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
venv="$target_dir/smoke-venv"
if [ ! -x "$venv/bin/aws" ] || [ ! -x "$venv/bin/s3cmd" ] || ! "$venv/bin/python" -c 'import boto3' 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet boto3 awscli s3cmd
fi
bin="$target_dir/debug/cairn"
[ -x "$bin" ] || cargo build --bin cairn

work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

export CAIRN_ACCESS_KEY=smoke-access CAIRN_SECRET_KEY=smoke-secret-key
"$bin" server --address 127.0.0.1:0 "$work/d1" "$work/d2" "$work/d3" "$work/d4" >"$work/out" 2>"$work/log" &
server_pid=$!
endpoint=$(server_endpoint "$work/out" "$server_pid" "$work/log") || exit 1

export AWS_ACCESS_KEY_ID=$CAIRN_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$CAIRN_SECRET_KEY AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
"$venv/bin/python" tests/smoke/boto3_smoke.py "$endpoint"
ENDPOINT="$endpoint" AWS="$venv/bin/aws" bash tests/smoke/awscli_smoke.sh
ENDPOINT="$endpoint" S3CMD="$venv/bin/s3cmd" bash tests/smoke/s3cmd_smoke.sh
ENDPOINT="$endpoint" bash tests/smoke/rclone_smoke.sh
echo "smoke: 4 passed, 0 failed"
