#!/usr/bin/env bash
# Installs what building and testing Cairn needs on a fresh Debian/Ubuntu machine:
# libclang (bindgen, for RocksDB's bindings), a C++ compiler (RocksDB is built from source),
# Python's venv module and rclone (the client smoke tests). Idempotent and quick when all is there.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in libclang-dev clang g++ make python3-venv rclone; do
    have_pkg "$pkg" || need+=("$pkg")
  done
  # The pyenv/python.org builds ship venv themselves; only Debian's python3 needs the package.
  if python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    need=("${need[@]/python3-venv}")
  fi
  pkgs=$(printf '%s ' "${need[@]}" | xargs)
  if [ -n "$pkgs" ]; then
    echo "setup: installing $pkgs"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $pkgs >/dev/null
  fi
else
  echo "setup: not a Debian-family system; install libclang, a C++ compiler and python3 yourself" >&2
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust (stable) first" >&2; exit 1; }
