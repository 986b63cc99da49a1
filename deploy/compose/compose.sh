#!/usr/bin/env bash
# Runs Compose on the dev cluster: `deploy/compose/compose.sh ARGS...` is
# `docker compose -p $COMPOSE_PROJECT_NAME -f deploy/compose/docker-compose.yml ARGS...`, with
# Compose v2 (`docker compose`) when it is installed and docker-compose 1.x otherwise.
# Examples: compose.sh ps, compose.sh logs -f gateway-1, compose.sh stop blob-2.
#
# COMPOSE_PROJECT_NAME (default cairn) names the cluster: containers, network and volumes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=${COMPOSE_PROJECT_NAME:-cairn}
if docker compose version >/dev/null 2>&1; then
    exec docker compose -p "$project" -f "$here/docker-compose.yml" "$@"
elif command -v docker-compose >/dev/null 2>&1; then
    exec docker-compose -p "$project" -f "$here/docker-compose.yml" "$@"
else
    echo "compose.sh: neither \`docker compose\` nor \`docker-compose\` is installed" >&2
    exit 127
fi
