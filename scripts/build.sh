#!/usr/bin/env bash
# Configures and builds Kiln (Release) into build/; pass targets as arguments (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${KILN_BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=${KILN_BUILD_TYPE:-Release} ${KILN_CMAKE_ARGS:-} >/dev/null
fi
ninja -C "$BUILD_DIR" --quiet "$@"
