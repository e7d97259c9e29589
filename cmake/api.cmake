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
# libpthreadpool itself. The link uses a copy of libkiln_runtime.a without xnn_threadpool.cc.o
# (ld extracted it even with libpthreadpool first on the line). The kiln CLI and the test
# executables keep Kiln's own pool.

set_target_properties(kiln_runtime kiln_compiler PROPERTIES POSITION_INDEPENDENT_CODE ON)
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
set(KILN_RUNTIME_NOPOOL ${CMAKE_BINARY_DIR}/libkiln_runtime_nopool.a)
add_custom_command(OUTPUT ${KILN_RUNTIME_NOPOOL}
  COMMAND ${CMAKE_COMMAND} -E copy $<TARGET_FILE:kiln_runtime> ${KILN_RUNTIME_NOPOOL}
  COMMAND ${CMAKE_AR} d ${KILN_RUNTIME_NOPOOL} xnn_threadpool.cc.o
  DEPENDS kiln_runtime COMMENT "libkiln_runtime.a without Kiln's pthreadpool, for libkiln.so")
add_custom_target(kiln_runtime_nopool DEPENDS ${KILN_RUNTIME_NOPOOL})
add_dependencies(kiln_shared kiln_runtime_nopool kiln_compiler)
target_include_directories(kiln_shared PRIVATE
  $<TARGET_PROPERTY:kiln_runtime,INTERFACE_INCLUDE_DIRECTORIES>)
target_link_libraries(kiln_shared PRIVATE $<TARGET_FILE:kiln_compiler> ${KILN_RUNTIME_NOPOOL}
  ${PTHREADPOOL_LIBRARY} ${XNNPACK_LIBRARY} ${CPUINFO_LIBRARY} onnx_proto protobuf::libprotobuf
  Threads::Threads nlohmann_json::nlohmann_json)
target_link_options(kiln_shared PRIVATE
  -Wl,--version-script=${CMAKE_SOURCE_DIR}/src/api/kiln.map -Wl,--exclude-libs,ALL
  -Wl,--no-undefined)
add_library(Kiln::kiln ALIAS kiln_shared)

include(${CMAKE_CURRENT_LIST_DIR}/api_tests.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/python.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/ocr_example.cmake)

# Install: headers, libkiln.so, the kiln CLI, the CMake package (find_package(Kiln) ->
# Kiln::kiln) and kiln.pc. The consumer test (tests/api/install_test.sh) builds against it.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
set_target_properties(kiln_shared PROPERTIES EXPORT_NAME kiln)
install(TARGETS kiln_shared EXPORT KilnTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES include/kiln/kiln.h include/kiln/kiln.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kiln)
install(TARGETS kiln RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT KilnTargets NAMESPACE Kiln:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Kiln)
set(PROJECT_VERSION_STR 0.1.0)
configure_file(cmake/install/KilnConfig.cmake.in ${CMAKE_BINARY_DIR}/KilnConfig.cmake @ONLY)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/KilnConfigVersion.cmake
  VERSION 0.1.0 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/KilnConfig.cmake ${CMAKE_BINARY_DIR}/KilnConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Kiln)
configure_file(cmake/install/kiln.pc.in ${CMAKE_BINARY_DIR}/kiln.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/kiln.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
