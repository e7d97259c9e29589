#!/usr/bin/env bash
# The main job: set up, build, and read the text of a page with PP-OCRv4 (det -> cls -> rec) on
# Kiln, through its public C++ API (examples/ocr). The sample page (Chinese and Latin lines) is
# rendered at build time into build/ocr/sample.png. The models run as Kiln packages in
# build/ocr/packages with on-device compilation on: every run records, and once a stage has
# recorded enough runs Kiln compiles it (int8 when it validates) on this machine, so running this
# script again gets faster. `build/kiln_ocr --help` for the options; `--json` for machines.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh kiln_ocr kiln_ocr_sample
./build/kiln_ocr --threads "${KILN_OCR_THREADS:-1}" build/ocr/sample.png "$@"
