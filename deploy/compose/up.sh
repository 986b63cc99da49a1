#!/usr/bin/env bash
# Brings the compose dev cluster up in one command and prints its S3 endpoint and keys:
#
#   deploy/compose/up.sh
#
# 1. the `cairn` binary: $CAIRN_BIN if set, else `cargo build` (debug; CAIRN_PROFILE=release
#    for an optimised one) into $CARGO_TARGET_DIR or target/;
# 2. the images (build-images.sh: the Debian base once per machine, then the cluster image);
# 3. `compose up -d`; the init service forms the meta cluster on the first start;
# 4. waits until the cluster is formed, every blob server is up and S3 answers through the
#    load balancer, then prints `S3 http://127.0.0.1:PORT` and the keys.
#
# Running it again is safe: it starts whatever is stopped and keeps the data.
# Environment: CAIRN_S3_PORT (9000), CAIRN_S3_BIND (127.0.0.1), CAIRN_ACCESS_KEY /
# CAIRN_SECRET_KEY (cairnadmin / cairnadmin), COMPOSE_PROJECT_NAME (cairn), CAIRN_IMAGE
# (cairn:dev), CAIRN_BIN, CAIRN_PROFILE (debug).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export CAIRN_S3_PORT=${CAIRN_S3_PORT:-9000}
export CAIRN_S3_BIND=${CAIRN_S3_BIND:-127.0.0.1}
export CAIRN_ACCESS_KEY=${CAIRN_ACCESS_KEY:-cairnadmin}
export CAIRN_SECRET_KEY=${CAIRN_SECRET_KEY:-cairnadmin}
export CAIRN_IMAGE=${CAIRN_IMAGE:-cairn:dev}
BLOB_NODES=4
META_NODES=3
WAIT_SECONDS=${CAIRN_UP_TIMEOUT:-180}

compose() { "$here/compose.sh" "$@"; }

# The binary to ship.
if [ -n "${CAIRN_BIN:-}" ]; then
    bin=$CAIRN_BIN
else
    profile=${CAIRN_PROFILE:-debug}
    bin=${CARGO_TARGET_DIR:-$root/target}/$profile/cairn
    if command -v cargo >/dev/null 2>&1; then
        flag=""
        [ "$profile" = release ] && flag=--release
        echo "up: cargo build $flag --bin cairn" >&2
        (cd "$root" && cargo build $flag --bin cairn >&2)
    elif [ ! -x "$bin" ]; then
        echo "up: no cargo and no $bin; install Rust or set CAIRN_BIN to a Linux cairn binary" >&2
        exit 1
    fi
fi

"$here/build-images.sh" "$bin"
compose up -d --remove-orphans >&2

# The init service's exit code: it forms the cluster, or finds it formed.
init=$(compose ps -a -q init)
[ -n "$init" ] || { echo "up: no init container" >&2; exit 1; }
code=$(docker wait "$init")
if [ "$code" != 0 ]; then
    compose logs --no-color init >&2
    echo "up: the init service failed (exit $code); see its log above" >&2
    exit 1
fi

# Formed, with every meta voter and every blob server up?
deadline=$((SECONDS + WAIT_SECONDS))
until status=$("$here/status.sh" --json 2>/dev/null) &&
    [ "$(grep -c '"voter": true' <<<"$status")" -ge "$META_NODES" ] &&
    [ "$(grep -c '"state": "up"' <<<"$status")" -ge "$BLOB_NODES" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        "$here/status.sh" >&2 || true
        echo "up: the cluster did not come up within $WAIT_SECONDS s; see \`$here/compose.sh logs\`" >&2
        exit 1
    fi
    sleep 1
done

# Does S3 answer through the load balancer? Any HTTP status line will do (an unsigned request
# gets 403), so no client is needed here.
s3_answers() {
    local line
    exec 3<>"/dev/tcp/$host/$CAIRN_S3_PORT" || return 1
    printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
    IFS= read -r -t 5 line <&3 || true
    exec 3<&-
    [[ "$line" == HTTP/1.1\ * ]]
}
host=$CAIRN_S3_BIND
[ "$host" = 0.0.0.0 ] && host=127.0.0.1
until s3_answers 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        compose logs --no-color --tail 20 lb gateway-1 gateway-2 >&2
        echo "up: S3 does not answer on port $CAIRN_S3_PORT" >&2
        exit 1
    fi
    sleep 1
done

echo "S3 http://$host:$CAIRN_S3_PORT"
echo "access key: $CAIRN_ACCESS_KEY"
echo "secret key: $CAIRN_SECRET_KEY"
echo "status: $here/status.sh   logs: $here/compose.sh logs -f   stop: $here/down.sh" >&2
