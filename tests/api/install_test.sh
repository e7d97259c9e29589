#!/bin/sh
# Installs Kiln from BUILD_DIR into a temporary prefix, then builds and runs small consumers
# against the installed tree only: C and C++ through find_package(Kiln), C through pkg-config
# (kiln.pc), each C one also linking Debian's libpthreadpool; and checks that libkiln.so
# exports only kiln_* symbols.
set -eu
BUILD_DIR=$1
SRC=$(cd "$(dirname "$0")" && pwd)
MODEL=$BUILD_DIR/api_models/conv.onnx
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cmake --install "$BUILD_DIR" --prefix "$TMP/prefix" >/dev/null
P=$TMP/prefix
LIBDIR=$(dirname "$(find "$P" -name libkiln.so | head -1)")
test -x "$P/bin/kiln"
test -f "$P/include/kiln/kiln.h" && test -f "$P/include/kiln/kiln.hpp"
exported=$(nm -D --defined-only "$LIBDIR/libkiln.so" | awk '$2 ~ /^[TDBWRVi]$/ {print $3}' | grep -v '^kiln_' || true)
if [ -n "$exported" ]; then echo "FAIL: libkiln.so exports non-API symbols:"; echo "$exported" | head; exit 1; fi
cmake -S "$SRC/consumer" -B "$TMP/b" -G Ninja -DCMAKE_PREFIX_PATH="$P" >/dev/null
ninja -C "$TMP/b" >/dev/null
LD_LIBRARY_PATH=$LIBDIR "$TMP/b/consumer_c" "$MODEL"
LD_LIBRARY_PATH=$LIBDIR "$TMP/b/consumer_cpp" "$MODEL"
PKG_CONFIG_PATH=$LIBDIR/pkgconfig
export PKG_CONFIG_PATH
cc -o "$TMP/pc_c" "$SRC/consumer/consumer.c" $(pkg-config --cflags --libs kiln) -lpthreadpool
LD_LIBRARY_PATH=$LIBDIR "$TMP/pc_c" "$MODEL"
c++ -std=c++20 -o "$TMP/pc_cpp" "$SRC/consumer/consumer.cpp" $(pkg-config --cflags --libs kiln)
LD_LIBRARY_PATH=$LIBDIR "$TMP/pc_cpp" "$MODEL"
echo "install + consumer test: ok"
