#!/usr/bin/env bash
# rclone (S3 backend, provider "Other", otherwise default settings) against a running Cairn:
# copy a tree with a multipart-sized file up, `rclone check` it (sizes and MD5s), copy it
# back bit-exact, a second copy transfers nothing, purge.
set -euo pipefail
export RCLONE_CONFIG_CAIRN_TYPE=s3 RCLONE_CONFIG_CAIRN_PROVIDER=Other
export RCLONE_CONFIG_CAIRN_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_CAIRN_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export RCLONE_CONFIG_CAIRN_ENDPOINT=$ENDPOINT RCLONE_CONFIG_CAIRN_REGION=us-east-1
export RCLONE_CONFIG=/dev/null
# rclone (aws-sdk-go) cannot load a custom CA bundle into its transport; the endpoint is plain
# HTTP on loopback anyway.
unset AWS_CA_BUNDLE
rc() { rclone --retries 1 --low-level-retries 1 "$@"; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/tree/sub"
head -c 12000000 /dev/urandom > "$dir/tree/sub/multi.bin"
head -c 100000 /dev/urandom > "$dir/tree/mid.bin"
echo "small" > "$dir/tree/small.txt"
rc mkdir cairn:rclone-smoke
# 5 MiB chunks from 5 MiB up: the 12 MB file goes up in three parts.
rc copy --s3-upload-cutoff 5M --s3-chunk-size 5M "$dir/tree" cairn:rclone-smoke/tree
rc check "$dir/tree" cairn:rclone-smoke/tree
rc copy cairn:rclone-smoke/tree "$dir/back"
diff -r "$dir/tree" "$dir/back"
again=$(rc copy -v "$dir/tree" cairn:rclone-smoke/tree 2>&1)
grep -q "There was nothing to transfer" <<<"$again" || {
  echo "a second rclone copy transferred data again: $again" >&2; exit 1; }
[ "$(rc lsf -R cairn:rclone-smoke/tree | sort | tr '\n' ' ')" = "mid.bin small.txt sub/ sub/multi.bin " ]
rc purge cairn:rclone-smoke
echo "rclone smoke: ok"
