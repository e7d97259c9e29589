# The Python module `kiln` (python/kiln_module.cc): pybind11 (Debian python3-pybind11 /
# pybind11-dev) over the C++ API, linked to libkiln.so, built for /usr/bin/python3 into
# build/python/. Its pytest tests (python/tests) run from CTest with PYTHONPATH set to that
# folder. Skipped with a message when pybind11 or the Python headers are missing.
set(PYBIND11_FINDPYTHON ON)
set(Python_EXECUTABLE /usr/bin/python3)
find_package(Python COMPONENTS Interpreter Development.Module QUIET)
find_package(pybind11 CONFIG QUIET)
if(NOT pybind11_FOUND OR NOT Python_FOUND)
  message(WARNING "Python module not built: pybind11 (python3-pybind11) or the Python headers "
                  "(python3-dev) are missing; run scripts/setup.sh")
  return()
endif()
pybind11_add_module(kiln_python MODULE python/kiln_module.cc)
set_target_properties(kiln_python PROPERTIES OUTPUT_NAME kiln
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/python)
target_link_libraries(kiln_python PRIVATE kiln_shared)
add_dependencies(kiln_python kiln_api_models)

add_test(NAME python COMMAND ${CMAKE_COMMAND} -E env PYTHONPATH=${CMAKE_BINARY_DIR}/python
  KILN_API_MODELS=${KILN_API_MODELS} KILN_SOURCE_DIR=${CMAKE_SOURCE_DIR}
  /usr/bin/python3 -m pytest -q -p no:cacheprovider ${CMAKE_SOURCE_DIR}/python/tests)
set_tests_properties(python PROPERTIES TIMEOUT 300)
