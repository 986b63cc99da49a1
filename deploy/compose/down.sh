#!/usr/bin/env bash
# Stops the dev cluster and removes its containers and network.
#
#   deploy/compose/down.sh             keeps the data (named volumes): `up.sh` finds it again
#   deploy/compose/down.sh --volumes   deletes the data too
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case "${1:-}" in
    "") exec "$here/compose.sh" down --remove-orphans ;;
    -v | --volumes) exec "$here/compose.sh" down --remove-orphans --volumes ;;
    *) echo "usage: $0 [--volumes]" >&2; exit 2 ;;
esac
