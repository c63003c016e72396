#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks for building and testing shouhu, or says what to
# install. cmake builds Pingora's C dependencies (zlib-ng); redis-server runs in the demo and
# the tests. With the argument `test`, also what only the tests use: chromium (headless, for
# the status and waiting-room pages), prometheus (promtool), nginx and fonts-dejavu-core (the
# load test's nginx variant and its plots). With `bench`, what `make bench` uses: nginx and
# fonts-dejavu-core.
# Usage: scripts/ensure-deps.sh [test|bench]
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
if [ "${1:-}" = test ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
fi
if [ "${1:-}" = test ] || [ "${1:-}" = bench ]; then
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
  [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "shouhu: cargo not found. Install the Rust toolchain (https://rustup.rs), then run this again." >&2
  exit 1
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "shouhu: installing ${need[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # RUNLEVEL=1 keeps the packages' scripts from starting services (redis on port 6379).
  RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "shouhu: missing ${need[*]}." >&2
  echo "Install them, e.g.: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
