#!/bin/sh
# Fails when a Kiln function in BINARY uses AVX/AVX-512 registers (ymm/zmm) without being one of
# the run-time-dispatched kernels (names with Avx2, Avx512, Vnni or Vbmi, src/core/cpu_features.h):
# the tree is compiled for baseline x86-64, so that code would die of SIGILL on a CPU without
# AVX2. Also fails when the binary has no such kernel at all (the check would be looking at
# nothing).
set -eu
bin=$1
objdump -d --no-show-raw-insn -C "$bin" | awk '
  /^[0-9a-f]+ <.*>:$/ { fn = substr($0, index($0, "<") + 1); fn = substr(fn, 1, length(fn) - 2); next }
  /%[yz]mm[0-9]/ {
    if (fn !~ /kiln/) next
    if (fn ~ /Avx2|Avx512|Vnni|Vbmi/) { ok[fn] = 1; next }
    if (!(fn in bad)) { bad[fn] = $0; nbad++ }
  }
  END {
    n = 0; for (f in ok) n++
    for (f in bad) print "isa_check: " f " uses AVX registers outside a dispatched kernel:" bad[f]
    if (n == 0) { print "isa_check: no dispatched AVX kernel found (wrong binary?)"; exit 1 }
    printf "isa_check: %d dispatched AVX kernels, %d other Kiln functions with AVX registers\n", n, nbad
    exit nbad > 0 ? 1 : 0
  }'
