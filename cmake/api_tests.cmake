# tests/api: the C API test (gtest, through libkiln.so only), a pure C test, the C++ wrapper
# test, the Python tests and the install + consumer test.
set(KILN_API_MODELS ${CMAKE_BINARY_DIR}/api_models)
add_custom_command(OUTPUT ${KILN_API_MODELS}/add.onnx ${KILN_API_MODELS}/conv.onnx
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/api/make_models.py ${KILN_API_MODELS}
  DEPENDS ${CMAKE_SOURCE_DIR}/tests/api/make_models.py COMMENT "API test models")
add_custom_target(kiln_api_models DEPENDS ${KILN_API_MODELS}/add.onnx)

add_executable(kiln_api_tests tests/api/c_api_test.cc tests/api/c_api_package_test.cc)
target_link_libraries(kiln_api_tests PRIVATE kiln_shared GTest::gtest GTest::gtest_main Threads::Threads)
target_compile_definitions(kiln_api_tests PRIVATE KILN_API_MODELS="${KILN_API_MODELS}"
  KILN_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
add_dependencies(kiln_api_tests kiln_api_models)
add_test(NAME api COMMAND kiln_api_tests)

# Two executables: the two error modes of kiln.hpp give its inline functions different return
# types, so they must not meet in one program.
foreach(mode cpp_api cpp_api_exceptions)
  add_executable(kiln_${mode}_tests tests/api/${mode}_test.cc)
  target_link_libraries(kiln_${mode}_tests PRIVATE kiln_shared GTest::gtest GTest::gtest_main)
  target_compile_definitions(kiln_${mode}_tests PRIVATE KILN_API_MODELS="${KILN_API_MODELS}")
  add_dependencies(kiln_${mode}_tests kiln_api_models)
  add_test(NAME ${mode} COMMAND kiln_${mode}_tests)
endforeach()

add_test(NAME api_install COMMAND sh ${CMAKE_SOURCE_DIR}/tests/api/install_test.sh ${CMAKE_BINARY_DIR})
set_tests_properties(api_install PROPERTIES TIMEOUT 600)
