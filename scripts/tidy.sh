#!/usr/bin/env bash
# clang-tidy over Kiln's sources with the checked-in .clang-tidy (needs build/compile_commands.json:
# bash scripts/build.sh first). Default: every .cc under src/ and tools/; or the files given.
# Exits 1 when any diagnostic is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${KILN_BUILD_DIR:-build}
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  mapfile -t files < <(git ls-files 'src/*.cc' 'tools/*.cc')
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
printf '%s\n' "${files[@]}" | xargs -P "${KILN_TIDY_JOBS:-2}" -n 4 \
  clang-tidy-14 -p "$BUILD_DIR" --quiet >"$out" 2>&1 || true
grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed|^Use -header-filter' "$out" || true
if grep -q -E '(warning|error): ' "$out"; then
  echo "tidy: $(grep -c -E '(warning|error): ' "$out") diagnostics" >&2
  exit 1
fi
echo "tidy: clean (${#files[@]} files)"
