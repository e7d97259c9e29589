# Reliability checks: the baseline-ISA check of the binaries, fuzz targets (KILN_FUZZ).

# The CLI (all of kiln_runtime and kiln_compiler linked in) uses AVX registers only in
# run-time-dispatched kernels.
add_test(NAME isa_baseline COMMAND sh ${CMAKE_SOURCE_DIR}/tests/unit/isa_check.sh $<TARGET_FILE:kiln>)

if(KILN_FUZZ)
  add_subdirectory(tests/fuzz)
endif()

# The XNNPACK backend's tests (each compares against the reference backend) once more with
# Kiln's own AVX2 kernels switched off (KILN_CPU_PORTABLE=1): the loops a CPU without AVX2 runs.
add_test(NAME unit_portable COMMAND kiln_unit_tests
  "--gtest_filter=Xnnpack.*:XnnpackModels.*:Int8BinaryTest.*:Int8ConvTest.*:Int8MatMulTest.*:*Int8NetTest.*:RefNn.*:RefRnn.*:RefLstm.*:RefGru.*:RefRecurrent.*:ControlFlow.*:XnnSilu.*:XnnErf.*:XnnpackModern.*")
set_tests_properties(unit_portable PROPERTIES ENVIRONMENT KILN_CPU_PORTABLE=1)
