# Build-wide options, included by CMakeLists.txt before any target.
#
# ISA: every build type compiles for the baseline x86-64 ISA; Kiln's AVX2/FMA kernels carry
# their own target attribute and are chosen at run time (src/core/cpu_features.h), so the same
# binary runs on CPUs without AVX2 (tests/unit/isa_check.sh checks the binary).
#
# KILN_SANITIZE: a comma-separated list of sanitizers, e.g. "address,undefined" (ON means
# that) or "thread". UndefinedBehaviorSanitizer findings abort (no recovery), so a test fails.
set(KILN_SANITIZE "" CACHE STRING "Sanitizers: address,undefined | thread | empty")
if(KILN_SANITIZE STREQUAL "ON")
  set(KILN_SANITIZE "address,undefined")
elseif(KILN_SANITIZE STREQUAL "OFF")
  set(KILN_SANITIZE "")
endif()
if(KILN_SANITIZE)
  add_compile_options(-fsanitize=${KILN_SANITIZE} -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=${KILN_SANITIZE})
  if(KILN_SANITIZE MATCHES "undefined")
    add_compile_options(-fno-sanitize-recover=undefined)
  endif()
endif()

# KILN_FUZZ: libFuzzer targets in tests/fuzz (clang only; see tests/fuzz/README.md). Everything
# is built with -fsanitize=fuzzer-no-link plus ASan and UBSan so that coverage reaches the
# libraries; the fuzz targets link -fsanitize=fuzzer.
option(KILN_FUZZ "Build the libFuzzer targets (tests/fuzz, clang)" OFF)
if(KILN_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "KILN_FUZZ needs clang: -DCMAKE_CXX_COMPILER=clang++-14")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -g
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
