#!/usr/bin/env bash
# The concurrency tests under ThreadSanitizer: builds kiln_unit_tests with -DKILN_SANITIZE=thread
# (gcc, RelWithDebInfo: -O2 -g) into build-tsan/ and runs the tests that use several threads
# (about 15 minutes to build on 2 cores, under a minute to run). Exits non-zero on a data race
# (TSan's exit code 66) or a failed test; the report names both threads' stacks.
#
#   bash scripts/tsan.sh                       # the concurrency tests below
#   bash scripts/tsan.sh --gtest_filter='-Odc.TwoProcesses*:Odc.Sigkill*'   # (nearly) everything
#
# The tests: one session run from 4 threads while plans are described (SessionThreads.*) and
# while weights released after packing are read back for new shapes (WeightsRelease.Session-
# ThreadsWithNewShapes), the
# thread pool's pthreadpool API with two callers (Xnnpack.ThreadPoolApi), kernels at 2 threads
# (Executor.*Threads), import/export from 4 threads (Exporter.ConformanceNodeModelsRoundTrip),
# ODC's recorder thread and background job while runs are served (Odc.*). Left out: the ODC tests
# that fork a child that compiles (Odc.TwoProcessesOneCompilesTheOtherServes: its quantize job
# takes about 9 minutes under TSan; Odc.SigkillDuringCompileLeavesAWorkingPackage: 100 forked
# jobs, crash safety rather than threads) and Odc.BrokenCalibrationRejectedAndTinyBudgetAborted
# (one thread, 70 s under TSan).
#
# Suppressions: tests/tsan.supp (third-party libraries only; see the file). XNNPACK, protobuf
# and cpuinfo are Debian's uninstrumented libraries: TSan sees neither their accesses nor their
# synchronisation, but XNNPACK runs on Kiln's own pthreadpool (xnn_threadpool.cc), which is
# instrumented.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${KILN_TSAN_BUILD_DIR:-build-tsan}
KILN_BUILD_DIR=$BUILD_DIR KILN_BUILD_TYPE=RelWithDebInfo KILN_CMAKE_ARGS=-DKILN_SANITIZE=thread \
  bash scripts/build.sh -j "${KILN_TSAN_BUILD_JOBS:-2}" kiln_unit_tests
filter='SessionThreads.*:WeightsRelease.SessionThreadsWithNewShapes:Xnnpack.ThreadPoolApi:Executor.*Threads:Exporter.ConformanceNodeModelsRoundTrip:Odc.*'
filter+='-Odc.TwoProcessesOneCompilesTheOtherServes:Odc.SigkillDuringCompileLeavesAWorkingPackage'
filter+=':Odc.BrokenCalibrationRejectedAndTinyBudgetAborted'
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--gtest_filter="$filter")
# die_after_fork=0: the ODC tests fork a serving process from a process with threads.
export TSAN_OPTIONS=${TSAN_OPTIONS:-die_after_fork=0:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp}
exec "$BUILD_DIR/kiln_unit_tests" "${args[@]}"
