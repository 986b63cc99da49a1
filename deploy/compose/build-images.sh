#!/usr/bin/env bash
# Builds the images of the compose dev cluster on this machine, without any image registry:
#
#   deploy/compose/build-images.sh [CAIRN_BINARY]
#
# 1. the base image, cairn-base:bookworm: a minimal Debian bookworm root filesystem made with
#    debootstrap (installed with apt if missing) and `docker import`ed, with haproxy (the load
#    balancer) and the shared libraries the `cairn` binary links (libstdc++, libgcc). Made once
#    per machine (about two minutes, mostly downloading); skipped while an image of the current
#    base version exists. On a host without apt it is built from debian:bookworm-slim instead,
#    which needs Docker Hub.
# 2. the cluster image, $CAIRN_IMAGE (default cairn:dev): the base plus the `cairn` binary, the
#    HAProxy configuration and the init script (Dockerfile beside this script). Seconds.
#
# CAIRN_BINARY (or $CAIRN_BIN) is the Linux x86-64/arm64 `cairn` to ship, debug or release;
# default: the debug binary the test command builds, $CARGO_TARGET_DIR/debug/cairn or
# target/debug/cairn.
#
# Environment: CAIRN_IMAGE, CAIRN_BASE_IMAGE (default cairn-base:bookworm), DEBIAN_MIRROR
# (default: the Debian mirror this machine's apt uses, else http://deb.debian.org/debian).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
base_image=${CAIRN_BASE_IMAGE:-cairn-base:bookworm}
image=${CAIRN_IMAGE:-cairn:dev}
# Bump when the package list below changes: an older base image is then rebuilt.
base_version=1
base_packages=haproxy,ca-certificates

binary=${1:-${CAIRN_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/cairn}}
if [ ! -x "$binary" ]; then
    echo "build-images: no cairn binary at $binary; build it first (cargo build --bin cairn)" >&2
    echo "  or pass its path: $0 target/release/cairn" >&2
    exit 1
fi

if [ "$(head -c 4 "$binary" | od -An -c | tr -d ' ')" != '177ELF' ]; then
    echo "build-images: $binary is not a Linux (ELF) binary; the containers need one" >&2
    exit 1
fi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

rootfs="" context=""
cleanup() {
    if [ -n "$rootfs" ]; then
        # debootstrap mounts proc and sys inside the target while it runs.
        for m in proc sys dev/pts; do as_root umount -l "$rootfs/$m" 2>/dev/null || true; done
        as_root rm -rf --one-file-system "$rootfs"
    fi
    if [ -n "$context" ]; then rm -rf "$context"; fi
}
trap cleanup EXIT

# The first http(s) URI of this machine's apt sources that is a Debian archive (not security).
debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    local found
    found=$({
        grep -hs '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
            tr -s '[:blank:]' '\n'
        grep -hs '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources | tr -s '[:blank:]' '\n'
    } | grep -E '^https?://[^ ]*/debian/?$' | head -1 || true)
    echo "${found:-http://deb.debian.org/debian}"
}

base_current() {
    [ "$(docker image inspect -f '{{index .Config.Labels "cairn.base-version"}}' "$base_image" 2>/dev/null)" = "$base_version" ]
}

# Hosts without apt (Fedora, macOS, ...) cannot debootstrap: there the same base comes from
# Debian's image on Docker Hub, which needs a registry.
build_base_from_registry() {
    echo "build-images: no debootstrap or apt here; building $base_image from debian:bookworm-slim" >&2
    printf '%s\n' \
        'FROM debian:bookworm-slim' \
        "RUN apt-get update && apt-get install -y --no-install-recommends ${base_packages//,/ } && rm -rf /var/lib/apt/lists/*" \
        "LABEL cairn.base-version=$base_version" |
        docker build --quiet -t "$base_image" - >/dev/null
}

build_base() {
    if ! command -v debootstrap >/dev/null 2>&1 && ! command -v apt-get >/dev/null 2>&1; then
        build_base_from_registry
        return
    fi
    if ! command -v debootstrap >/dev/null 2>&1; then
        echo "build-images: installing debootstrap" >&2
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq debootstrap >/dev/null
    fi
    local mirror
    mirror=$(debian_mirror)
    rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/cairn-rootfs.XXXXXX")
    echo "build-images: debootstrap bookworm from $mirror (once per machine; a few minutes)" >&2
    local started=$SECONDS
    as_root debootstrap --variant=minbase --include="$base_packages" bookworm "$rootfs" "$mirror" \
        >"$rootfs.log" 2>&1 || {
        tail -30 "$rootfs.log" >&2
        echo "build-images: debootstrap failed; full log in $rootfs.log" >&2
        exit 1
    }
    rm -f "$rootfs.log"
    # Package caches and lists are not needed at run time.
    as_root rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/var/log/*.log "$rootfs"/usr/share/doc "$rootfs"/usr/share/man
    as_root tar -C "$rootfs" --numeric-owner -c . |
        docker import \
            --change "LABEL cairn.base-version=$base_version" \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["/bin/bash"]' \
            - "$base_image" >/dev/null
    echo "build-images: $base_image made in $((SECONDS - started)) s" >&2
}

# Two builds at once (two test runs) would both debootstrap: the second waits for the first.
if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/cairn-build-images.lock"
    flock 9
fi
if base_current; then
    echo "build-images: $base_image exists" >&2
else
    build_base
fi

# The build context holds only what the Dockerfile copies (not the whole checkout).
context=$(mktemp -d)
cp "$here/Dockerfile" "$here/haproxy.cfg" "$here/init-cluster.sh" "$context/"
cp "$binary" "$context/cairn"
previous=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
docker build --quiet --build-arg "BASE=$base_image" -t "$image" "$context" >/dev/null
# The image this one replaces: removed unless containers still use it.
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "$image")" ]; then
    docker rmi "$previous" >/dev/null 2>&1 || true
fi
echo "build-images: $image built from $binary" >&2
