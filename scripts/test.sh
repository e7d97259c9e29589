#!/usr/bin/env bash
# The whole test suite: set up, build, then unit tests, ONNX conformance (against the checked-in
# known failures) and the real models against ONNX Runtime, through CTest; then the fuzz targets'
# short run (tests/fuzz: a Debug clang build with ASan+UBSan in build-fuzz/, 30 s per target),
# which is also the check that a non-Release build compiles.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
(cd "${KILN_BUILD_DIR:-build}" && ctest --output-on-failure --timeout 1800)
bash scripts/fuzz.sh
