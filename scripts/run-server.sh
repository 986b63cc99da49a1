#!/usr/bin/env bash
# Builds Cairn (release) and runs the embedded server: meta + blob + gateway in one process.
# Usage: scripts/run-server.sh [DATA_DIR...]   (default: ./data; several dirs = several disks)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -eq 0 ]; then set -- ./data; fi
exec cargo run --release --bin cairn -- server "$@"
