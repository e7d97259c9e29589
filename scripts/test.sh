#!/usr/bin/env bash
# The whole test suite: set up, build, then unit tests, ONNX conformance (against the checked-in
# known failures) and the real models against ONNX Runtime, through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd "${KILN_BUILD_DIR:-build}"
ctest --output-on-failure --timeout 1800
