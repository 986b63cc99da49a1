#!/usr/bin/env bash
# The dev cluster's health: its containers, then `cairn admin status` (meta members and their
# Raft state, blob nodes and disks) run inside the first meta container that is running.
#
#   deploy/compose/status.sh          containers and tables
#   deploy/compose/status.sh --json   only `cairn admin status --json`
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# -a: Compose v2 lists only running containers by default, and a stopped one matters here.
if [ "${1:-}" != --json ]; then "$here/compose.sh" ps -a; echo; fi
last=""
for meta in meta-1 meta-2 meta-3; do
    if out=$("$here/compose.sh" exec -T "$meta" cairn admin status "$@" 2>&1); then
        printf '%s\n' "$out"
        exit 0
    fi
    last="$meta: $out"
done
echo "status.sh: no meta container could report the cluster's status; last error:" >&2
printf '%s\n' "$last" >&2
exit 1
