#!/usr/bin/env bash
# The unit suite under AddressSanitizer + UndefinedBehaviorSanitizer (README's test command runs
# it after the fuzz targets). It reuses the fuzz build in build-fuzz/ (clang, Debug -O1, ASan +
# UBSan with -fno-sanitize-recover: any report fails the run; leak detection on), adding the
# unit tests and the kiln CLI they call; a separate build would compile every source again.
# Exits non-zero on a failed test or a sanitizer report (the report names the stack).
#
#   bash scripts/asan_unit.sh                          # the whole unit suite (~9 min on 2 cores)
#   bash scripts/asan_unit.sh --gtest_filter='Odc.*'   # some tests
#   KILN_ASAN_BUILD_ONLY=1 / KILN_ASAN_SKIP_BUILD=1    # build only / run only
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${KILN_FUZZ_BUILD_DIR:-build-fuzz}
JOBS=${KILN_FUZZ_BUILD_JOBS:-2}
CXX=${KILN_FUZZ_CXX:-clang++-14}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
    -DCMAKE_CXX_COMPILER="$CXX" -DKILN_FUZZ=ON ${KILN_CMAKE_ARGS:-} >/dev/null
fi
[ "${KILN_ASAN_SKIP_BUILD:-0}" = 1 ] || ninja -C "$BUILD_DIR" -j "$JOBS" --quiet kiln kiln_unit_tests
[ "${KILN_ASAN_BUILD_ONLY:-0}" = 1 ] && exit 0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
start=$(date +%s)
set +e
"$BUILD_DIR/kiln_unit_tests" --gtest_brief=1 "$@"
rc=$?
set -e
echo "asan_unit: kiln_unit_tests under ASan+UBSan exited $rc after $(( $(date +%s) - start )) s"
exit $rc
