#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang++-14, ASan and UBSan into build-fuzz/ and
# runs each for a while from its committed seed corpus (tests/fuzz/corpus/<target>; new inputs go
# to a scratch copy, the committed corpus is not touched). Prints execs/s and coverage per target;
# exits 1 on the first crash, leak, timeout or out-of-memory, leaving the input in
# build-fuzz/artifacts/ (turn it into a regression test in tests/unit, see tests/fuzz/README.md).
#
#   bash scripts/fuzz.sh                  # every target, 30 s each (README's test command)
#   KILN_FUZZ_SECONDS=600 bash scripts/fuzz.sh   # the long run (10 minutes each)
#   bash scripts/fuzz.sh fuzz_npy         # some targets only
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${KILN_FUZZ_BUILD_DIR:-build-fuzz}
SECONDS_EACH=${KILN_FUZZ_SECONDS:-30}
JOBS=${KILN_FUZZ_BUILD_JOBS:-2}
CXX=${KILN_FUZZ_CXX:-clang++-14}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_onnx_import fuzz_npy fuzz_manifest fuzz_config fuzz_plan_file)

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  # Debug (asserts on) at -O1: also the tree's non-Release build check.
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
    -DCMAKE_CXX_COMPILER="$CXX" -DKILN_FUZZ=ON ${KILN_CMAKE_ARGS:-} >/dev/null
fi
ninja -C "$BUILD_DIR" -j "$JOBS" --quiet "${targets[@]}"
[ "${KILN_FUZZ_BUILD_ONLY:-0}" = 1 ] && exit 0

mkdir -p "$BUILD_DIR/artifacts" "$BUILD_DIR/work"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for t in "${targets[@]}"; do
  seeds=tests/fuzz/corpus/${t#fuzz_}
  work="$BUILD_DIR/work/${t#fuzz_}"
  mkdir -p "$work"
  log="$BUILD_DIR/work/$t.log"
  set +e
  "$BUILD_DIR/tests/fuzz/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$BUILD_DIR/artifacts/$t-" "$work" "$seeds" >"$log" 2>&1
  rc=$?
  set -e
  # The last status line ("#N DONE cov: C ft: F corp: ...") and the final stats.
  cov=$( (grep -E '^#[0-9]+.*cov: ' "$log" || true) | tail -1 |
    sed -E 's/.*cov: ([0-9]+).*ft: ([0-9]+).*corp: ([0-9]+).*/cov \1, features \2, corpus \3/')
  execs=$( (grep -E 'stat::number_of_executed_units' "$log" || true) | awk '{print $2}')
  rate=$( (grep -E 'stat::average_exec_per_sec' "$log" || true) | awk '{print $2}')
  printf 'fuzz: %-18s %4ss  %s execs (%s/s)  %s\n' "$t" "$SECONDS_EACH" "${execs:-?}" "${rate:-?}" "${cov:-?}"
  if [ $rc -ne 0 ]; then
    echo "fuzz: $t FAILED (exit $rc); log: $log" >&2
    (grep -E 'ERROR|SUMMARY|Test unit written|==[0-9]+==' "$log" || tail -20 "$log") | head -20 >&2
    status=1
    break
  fi
done
exit $status
