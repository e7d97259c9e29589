# Public API (include/kiln/): the shared C library libkiln.so (src/api over the static
# libraries), its tests (tests/api), the Python module (python/), the OCR example
# (examples/ocr) and the install rules (headers, libraries, the CLI, a CMake package, kiln.pc).
#
# Symbols: libkiln.so exports kiln_* only (src/api/kiln.map; the API sources are compiled with
# hidden visibility). XNNPACK is Debian's shared libXNNPACK, which calls the pthreadpool API by
# name through the global symbol scope; a pthreadpool defined inside libkiln.so and kept local
# would not be the one XNNPACK calls. So libkiln.so links Debian's libpthreadpool (placed before
# the static libraries, so that Kiln's own pthreadpool in xnn_threadpool.cc is not pulled in),
# and pools created by Kiln are the ones XNNPACK runs on, with or without a host that links
# libpthreadpool itself. The kiln CLI and the test executables keep Kiln's own pool.

set_target_properties(kiln_runtime kiln_onnx PROPERTIES POSITION_INDEPENDENT_CODE ON)
find_library(PTHREADPOOL_LIBRARY pthreadpool REQUIRED)

file(GLOB KILN_API_SOURCES CONFIGURE_DEPENDS src/api/*.cc)
add_library(kiln_shared SHARED ${KILN_API_SOURCES}
  tools/kiln/plan.cc tools/kiln/plan_render.cc tools/kiln/tool_util.cc)
set_target_properties(kiln_shared PROPERTIES OUTPUT_NAME kiln VERSION 0.1.0 SOVERSION 0
  CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
  LINK_DEPENDS ${CMAKE_SOURCE_DIR}/src/api/kiln.map)
target_compile_definitions(kiln_shared PRIVATE KILN_BUILDING_LIBRARY)
target_include_directories(kiln_shared
  PUBLIC $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include> $<INSTALL_INTERFACE:include>
  PRIVATE src tools)
target_link_libraries(kiln_shared PRIVATE ${PTHREADPOOL_LIBRARY} kiln_onnx
  nlohmann_json::nlohmann_json)
target_link_options(kiln_shared PRIVATE
  -Wl,--version-script=${CMAKE_SOURCE_DIR}/src/api/kiln.map -Wl,--exclude-libs,ALL
  -Wl,--no-undefined)
add_library(Kiln::kiln ALIAS kiln_shared)

include(${CMAKE_CURRENT_LIST_DIR}/api_tests.cmake)
